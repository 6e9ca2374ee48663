"""The price table: Heroku's published prices per dyno type, overridden in settings."""

from __future__ import annotations

import argparse

import pytest
import yaml

from dynoscaler import check_config, config
from dynoscaler.config import ConfigError
from dynoscaler.prices import Prices, UnknownDynoType


def document(**top):
    role = {"queues": [{"name": "q", "backend": "sidekiq", "url": "redis://127.0.0.1/11"}]}
    return {"apps": {"shop": {"roles": {"worker": role}}}, **top}


def test_hourly_prices_are_the_monthly_price_over_720_hours():
    prices = Prices()
    assert prices.hourly("standard-1x") == pytest.approx(25 / 720)
    assert prices.hourly("Performance-L") == pytest.approx(500 / 720)
    assert prices.hourly("dyno-2c-8gb") == pytest.approx(160 / 720)
    # An hour of standard-2x dynos for two hours costs 2 x 50/720.
    assert prices.cost("standard-2X", 2 * 3600) == pytest.approx(100 / 720)
    assert prices.sizes[0] == "eco"
    assert prices.sizes.index("standard-1x") < prices.sizes.index("performance-m")


def test_settings_override_and_add_prices():
    settings = config.parse(
        document(prices={"Standard-1X": 0.05, "private-custom": 2}), "p.yml", {}
    )
    assert settings.prices.hourly("standard-1x") == 0.05
    assert settings.prices.hourly("private-custom") == 2
    assert settings.prices.hourly("standard-2x") == pytest.approx(50 / 720)
    assert config.parse(document(), "p.yml", {}).prices.hourly("basic") == pytest.approx(7 / 720)


def test_an_unknown_dyno_type_is_named():
    with pytest.raises(UnknownDynoType, match="'huge-9x'.*prices:"):
        Prices().hourly("huge-9x")


@pytest.mark.parametrize(
    "prices, message",
    [
        ({"standard-1x": -1}, "p.yml: prices.standard-1x: -1 is less than the minimum of 0"),
        ({"standard-1x": "cheap"}, "p.yml: prices.standard-1x: 'cheap' is not a number"),
        ({"standard 1x": 1}, "p.yml: prices: 'standard 1x' is not a valid name"),
    ],
)
def test_bad_prices_are_config_errors(prices, message):
    with pytest.raises(ConfigError) as raised:
        config.parse(document(prices=prices), "p.yml", {})
    assert message in str(raised.value)


def test_check_config_shows_the_overrides(tmp_path, capsys):
    path = tmp_path / "autoscale.yml"
    path.write_text(yaml.safe_dump(document(prices={"standard-2x": 0.07})))
    assert check_config.run(argparse.Namespace(file=str(path))) == 0
    assert "prices per dyno-hour over Heroku's (dynoscaler/prices.py): standard-2x $0.07" in (
        capsys.readouterr().out
    )
