"""The receiver of Heroku's api:formation webhooks: a formation change known at once.

A WSGI application for POST /heroku/formation (the URL `dynoscaler heroku
webhooks --url` subscribes). A delivery's `Heroku-Webhook-Hmac-SHA256` must be
the body's signature under DYNOSCALER_HEROKU_WEBHOOK_SECRET, compared in
constant time, or the answer is 401 and nothing changes; then the event's
formation goes to the formation source (FormationSource.apply), which
publishes it on the next scrape and counts the app's formation as confirmed
now. Heroku sends one on every change, by hand, by a deploy or by the scaler's
own PATCH, so the exporter learns the scaler's confirmed counts this way too.

Answers: 204 applied; 202 an event of another resource or an app not in the
settings (nothing to do, and nothing for Heroku to retry); 400 a body that is
not a formation event; 401 a wrong or missing signature; 405 not a POST; 413
over MAX_BODY_BYTES.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from dynoscaler.heroku_webhooks import SIGNATURE_HEADER, formation_event, verified
from exporter.collectors.formation import FormationSource

PATH = "/heroku/formation"
MAX_BODY_BYTES = 64 * 1024  # a formation event is about 1.5 KB
_log = logging.getLogger(__name__)


class FormationWebhook:
    """WSGI application: verify, parse and apply one api:formation delivery."""

    def __init__(self, source: FormationSource, secret: str) -> None:
        self.source = source
        self.secret = secret

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self.answer(Request(environ))(environ, start_response)

    def answer(self, request: Request) -> Response:
        if request.method != "POST":
            return _text(405, "POST only")
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _text(413, "body too large")
        body = request.get_data(cache=False)[: MAX_BODY_BYTES + 1]
        if len(body) > MAX_BODY_BYTES:
            return _text(413, "body too large")
        if not verified(self.secret, body, request.headers.get(SIGNATURE_HEADER)):
            return _text(401, f"{SIGNATURE_HEADER} missing or wrong")
        try:
            event = formation_event(json.loads(body))
        except ValueError as error:  # not JSON, or a formation event missing its fields
            return _text(400, f"not a formation event: {error}")
        if event is None:
            return _text(202, "not a formation event: ignored")
        if not self.source.apply(event.app, event.type, event.quantity, event.size):
            return _text(202, f"app {event.app} is not in the settings: ignored")
        _log.info("webhook: %s %s=%d (%s)", event.app, event.type, event.quantity, event.size)
        return Response(status=204)


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")
