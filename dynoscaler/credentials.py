"""Shared secrets on the HTTP endpoints that change what dynoscaler does.

The scaler's webhook (DYNOSCALER_WEBHOOK_TOKEN) decides dyno counts; the
exporter's router log drain (DYNOSCALER_DRAIN_TOKEN) feeds the request rates
web roles are scaled on, so forged router lines could scale a role to
max_dynos. Both take the secret as a bearer token or as basic auth's password,
which is what a URL with credentials sends (Heroku drains and Alertmanager's
`basic_auth` alike).
"""

from __future__ import annotations

import base64
import hmac


def authorized(header: str, secret: str) -> bool:
    """Whether an Authorization header carries `secret` (compared in constant time)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        offered = value.strip()
    elif scheme.lower() == "basic":
        try:
            offered = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(offered.encode(), secret.encode())
