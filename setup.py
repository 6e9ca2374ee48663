from setuptools import find_namespace_packages, setup

setup(
    name="dynoscaler",
    version="0.1.0",
    description="Deadline-driven autoscaler for Heroku dynos, built on Prometheus",
    python_requires=">=3.11",
    # namespace packages: dynoscaler/sim/scenarios holds data only
    packages=find_namespace_packages(
        include=["dynoscaler", "dynoscaler.*", "exporter", "exporter.*", "scaler", "scaler.*"],
        exclude=["*.__pycache__"],
    ),
    include_package_data=True,
    package_data={
        "scaler": ["openapi.yml"],
        "dynoscaler.demo": ["demo.yml"],
        "dynoscaler.sim.scenarios": ["*.yaml"],
    },
    install_requires=[
        "prometheus-client>=0.20",
        "flask>=3.0",
        "requests>=2.31",
        "heroku3==5.2.1",
        # heroku3 imports six without declaring it
        "six>=1.16",
        "pyyaml>=6.0",
        "gunicorn>=24.0",  # the asyncio worker the exporter runs under
        "redis>=5.0",
        # C reply parser: the exporter reads thousands of replies per scrape
        "hiredis>=2.0",
        "jsonschema>=4.20",
        "psycopg2-binary>=2.9",
        "numpy>=1.26",
        "matplotlib>=3.8",
        # the OTLP/HTTP receiver of Fir's telemetry drains (exporter/otlp.py)
        "opentelemetry-proto>=1.27",
        # schedules' cron expressions, evaluated across DST changes as Debian's cron does
        # (dynoscaler/schedules.py); tzdata where the system has no zone database
        "cronsim>=2.6",
        "tzdata>=2024.1",
        # the .env beside autoscale.yml that init writes and every command reads
        # (dynoscaler/envfile.py), as `heroku local` reads one
        "python-dotenv>=1.0",
    ],
    extras_require={
        # the SQL job libraries' databases (exporter/collectors/sql_source.py)
        "sql": ["psycopg[binary]>=3.1", "pymysql>=1.1"],
        "test": [
            "psycopg[binary]>=3.1",
            "pymysql>=1.1",
            "pytest>=8.0",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "ruff>=0.6",
            "rq>=2.0",
            "celery>=5.4",
            "pika>=1.3",
            # BullMQ's Python port runs BullMQ's own Lua scripts (tests/test_exporter_bullmq.py)
            "bullmq>=2.9",
            "dramatiq[redis,rabbitmq]>=1.17",
            "schemathesis>=4.0",
            # OTLP bodies as Fir's telemetry drains send them (tests/test_exporter_otlp.py)
            "opentelemetry-sdk>=1.27",
            "opentelemetry-exporter-otlp-proto-http>=1.27",
        ],
    },
    entry_points={"console_scripts": ["dynoscaler=dynoscaler.cli:main"]},
)
