"""dynoscaler: keep every job queue inside its deadline at the fewest Heroku dynos."""

__version__ = "0.1.0"
