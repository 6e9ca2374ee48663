"""`dynoscaler demo`: the closed loop on one machine (see main.py); also used by the e2e tests."""
