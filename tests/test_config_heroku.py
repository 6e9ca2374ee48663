"""The `heroku:` section: the API budget's settings."""

from __future__ import annotations

import pytest

from dynoscaler import config
from dynoscaler.config import ConfigError

APPS = {"shop": {"roles": {"web": {"requests": "router"}}}}


def parse(heroku: dict | None) -> config.Config:
    document = {"apps": APPS, **({"heroku": heroku} if heroku is not None else {})}
    return config.parse(document, "autoscale.yml", {})


def test_defaults_spend_half_of_a_shared_accounts_refill():
    settings = parse(None).heroku
    assert (settings.token_scope, settings.share, settings.rate_limit) == ("shared", 0.5, 4500)


def test_a_dedicated_account_defaults_to_more_and_an_explicit_share_wins():
    assert parse({"token_scope": "dedicated"}).heroku.share == 0.9
    assert parse({"token_scope": "dedicated", "budget_share": 0.3}).heroku.share == 0.3
    assert parse({"budget_share": 1, "rate_limit": 10_000}).heroku.rate_limit == 10_000


@pytest.mark.parametrize(
    ("heroku", "message"),
    [
        ({"budget_share": 0}, "heroku.budget_share: 0 is less than or equal to the minimum"),
        ({"budget_share": 1.5}, "heroku.budget_share: 1.5 is greater than the maximum of 1"),
        ({"budget_share": ".nan"}, "heroku.budget_share: '.nan' is not a number"),
        ({"token_scope": "team"}, "heroku.token_scope: 'team' is not one of: shared, dedicated"),
        ({"rate_limit": 4500.0}, "heroku.rate_limit: 4500.0 is not a whole number"),
        ({"budget": 1}, "heroku: unknown key 'budget'"),
    ],
)
def test_bad_budget_settings_fail_check_config(heroku, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse(heroku)
