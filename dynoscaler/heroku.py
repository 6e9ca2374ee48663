"""The one place that builds a heroku3 client.

heroku3 has no setting for the API address and no request time-out; both are
set here, so the exporter, the scaler and the tests (pointing HEROKU_API_URL at
`dynoscaler fake-heroku`) all reach Heroku the same way.
"""

from __future__ import annotations

import os

import heroku3
import requests

from dynoscaler.config import ConfigError

DEFAULT_API_URL = "https://api.heroku.com"
DEFAULT_TIMEOUT_SECONDS = 10.0


class _TimeoutSession(requests.Session):
    """A requests session with a default time-out, since heroku3 never passes one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout
        # Only the key given here authenticates; never fall back to ~/.netrc.
        self.trust_env = False

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


def api_url() -> str:
    return os.environ.get("HEROKU_API_URL", DEFAULT_API_URL).rstrip("/")


def client(timeout: float = DEFAULT_TIMEOUT_SECONDS) -> heroku3.api.Heroku:
    """An unverified heroku3 client for HEROKU_API_URL with HEROKU_API_KEY.

    It does not call GET /account/rate-limits on creation (heroku3.from_key
    does), so building one never touches the network.
    """
    key = os.environ.get("HEROKU_API_KEY")
    if not key:
        raise ConfigError("HEROKU_API_KEY is not set: the Heroku Platform API needs a key")
    connection = heroku3.api.Heroku(session=_TimeoutSession(timeout))
    connection._heroku_url = api_url()
    connection._api_key = key
    connection._session.auth = ("", key)
    return connection
