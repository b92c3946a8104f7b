"""Simulation settings: defaults, and clear errors for every bad value."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shopops.core.errors import ConfigError, InvalidInputError
from shopops.simulator.model import PainRates, SimulationConfig, SimulationConfigError


def test_defaults() -> None:
    config = SimulationConfig()
    assert config.regions == ["vn", "sg", "th"]
    assert (config.days, config.orders_per_day, config.seed) == (30, 1000, 42)
    assert config.start == date(2026, 1, 1)
    assert (config.partitions, config.envelope, config.rate_multiplier) == (3, "schema", 1.0)
    assert config.rates == PainRates()
    assert config.effective_rates()["late_payment"] == PainRates().late_payment


def test_regions_accept_a_comma_separated_string_and_normalise() -> None:
    assert SimulationConfig(regions="VN, sg,vn").regions == ["vn", "sg"]


def test_multiplier_multiplies_every_rate() -> None:
    rates = SimulationConfig(rate_multiplier=10).effective_rates()
    assert rates["missing_payment"] == pytest.approx(10 * PainRates().missing_payment)
    assert rates["checkout_burst"] == pytest.approx(10 * PainRates().checkout_burst)


def test_the_config_round_trips_through_json() -> None:
    config = SimulationConfig(regions=["th"], rates=PainRates(late_payment=0.1), envelope="mixed")
    assert SimulationConfig.model_validate(config.model_dump(mode="json")) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"regions": ["vn", "xx"]}, "unknown region(s): xx"),
        ({"regions": []}, "no region given"),
        ({"days": 0}, "days: Input should be greater than or equal to 1"),
        ({"orders_per_day": 0}, "orders_per_day: Input should be greater than or equal to 1"),
        ({"partitions": 0}, "partitions"),
        ({"seed": -1}, "seed"),
        ({"envelope": "avro"}, "envelope"),
        ({"rate_multiplier": -1}, "rate_multiplier"),
        ({"rates": {"late_payment": -0.1}}, "rates.late_payment: Input should be greater than or equal to 0"),
        ({"rates": {"no_such_pain": 0.1}}, "rates.no_such_pain: Extra inputs are not permitted"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        (
            {"rates": {"duplicate_event": 0.2}, "rate_multiplier": 10},
            "rates.duplicate_event: is a probability",
        ),
        ({"rates": {"late_payment": 0.6, "missing_payment": 0.5}}, "add up to 1.1"),
    ],
)
def test_invalid_configs_raise_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        SimulationConfig(**kwargs)
    assert message in str(caught.value)


def test_the_error_is_both_an_input_and_a_config_error() -> None:
    with pytest.raises(SimulationConfigError) as caught:
        SimulationConfig(days=0, orders_per_day=0)
    error = caught.value
    assert isinstance(error, InvalidInputError)
    assert isinstance(error, ConfigError)
    assert error.exit_code == 2
    assert [name for name, _ in error.problems] == ["days", "orders_per_day"]
    assert error.to_dict()["details"]["problems"][0]["field"] == "days"
    assert error.hint
    assert "docs/simulator.md" in error.hint


def test_negative_rate_in_pain_rates_directly() -> None:
    with pytest.raises(
        SimulationConfigError, match=r"checkout_burst: Input should be greater than or equal to 0"
    ):
        PainRates(checkout_burst=-1)


def test_model_validate_raises_the_same_error() -> None:
    with pytest.raises(SimulationConfigError, match="days"):
        SimulationConfig.model_validate({"days": 0})
