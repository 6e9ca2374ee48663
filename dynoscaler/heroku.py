"""The one place that builds a heroku3 client.

heroku3 has no setting for the API address and no request time-out; both are
set here, so the exporter, the scaler and the tests (pointing HEROKU_API_URL at
`dynoscaler fake-heroku`) all reach Heroku the same way. Every answer is
counted here too (dynoscaler.heroku_budget.record: the spend by client and
kind, and the last RateLimit-Remaining). Apps are addressed by name
(`app_by_name`): Heroku's API takes the name in every app path, so no
GET /apps/{name} is spent to learn an id.
"""

from __future__ import annotations

import os

import heroku3
import requests

from dynoscaler import heroku_budget
from dynoscaler.config import ConfigError

DEFAULT_API_URL = "https://api.heroku.com"
DEFAULT_TIMEOUT_SECONDS = 10.0


class _TimeoutSession(requests.Session):
    """A requests session with a default time-out, since heroku3 never passes one,
    that records every answer in the API budget under `client`."""

    def __init__(self, timeout: float, client: str) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.client = client
        # Only the key given here authenticates; never fall back to ~/.netrc.
        self.trust_env = False

    def request(self, method, url, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        response = super().request(method, url, **kwargs)
        heroku_budget.record(self.client, response)
        return response


def api_url() -> str:
    return os.environ.get("HEROKU_API_URL", DEFAULT_API_URL).rstrip("/")


def client(timeout: float = DEFAULT_TIMEOUT_SECONDS, user: str = "scaler") -> heroku3.api.Heroku:
    """An unverified heroku3 client for HEROKU_API_URL with HEROKU_API_KEY.

    It does not call GET /account/rate-limits on creation (heroku3.from_key
    does), so building one never touches the network. `user` names who spends
    (the `client` label of dynoscaler_heroku_api_requests_total): the scaler's
    actuator by default, "exporter" for the formation poller, "cli" for commands.
    """
    key = os.environ.get("HEROKU_API_KEY")
    if not key:
        raise ConfigError("HEROKU_API_KEY is not set: the Heroku Platform API needs a key")
    connection = heroku3.api.Heroku(session=_TimeoutSession(timeout, user))
    connection._heroku_url = api_url()
    connection._api_key = key
    connection._session.auth = ("", key)
    return connection


def app_by_name(connection: heroku3.api.Heroku, name: str) -> heroku3.models.app.App:
    """A heroku3 App for `name` without a call: its id is the name, which Heroku's API
    takes in every app path (heroku3's formation batch update goes by id), so reading
    and scaling a formation costs one token each, never a GET /apps/{name} first."""
    return heroku3.models.app.App.new_from_dict({"id": name, "name": name}, h=connection)
