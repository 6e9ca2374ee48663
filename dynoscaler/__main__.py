from dynoscaler.cli import main

raise SystemExit(main())
