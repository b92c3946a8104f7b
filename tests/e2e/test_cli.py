"""The CLI as a user meets it: help everywhere, clear errors and exit codes on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.e2e.helpers import run_cli


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("up",),
        ("simulate",),
        ("events",),
        ("events", "topics"),
        ("events", "tail"),
        ("events", "lag"),
        ("events", "groups"),
        ("config", "show"),
        ("inventory",),
        ("inventory", "reserve"),
        ("inventory", "bursts"),
        ("inventory", "audit"),
    ],
)
def test_help_everywhere(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_cli(tmp_path, *args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (("events", "tail", "no.such.topic"), {}, 3, "topic 'no.such.topic' does not exist"),
        (("events", "tail", "bad topic!"), {}, 3, "does not exist"),
        (("events", "lag", "nobody"), {}, 3, "consumer group 'nobody' has no committed offsets"),
        (("simulate", "--regions", "vn,xx", "--days", "1"), {}, 2, "unknown region(s): xx"),
        (("simulate", "--days", "0"), {}, 2, "--days"),
        (("simulate", "--rate", "-5"), {}, 2, "--rate must be positive"),
        (("simulate", "--start", "yesterday"), {}, 2, "--start must be a date"),
        (("events", "topics"), {"SHOPOPS_EVENTS__TYPE": "rabbit"}, 78, "known types: kafka, sqlite"),
        (("events", "topics"), {"SHOPOPS_EVENTS__COLOUR": "red"}, 78, "colour"),
        (("events", "topics"), {"SHOPOPS_API__PORT": "http"}, 78, "api.port"),
        (("events", "tail", "x", "-n", "0"), {}, 2, "limit must be between 1 and 10000"),
    ],
)
def test_bad_input_exits_with_a_clear_message(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], code: int, message: str
) -> None:
    result = run_cli(tmp_path / "home", *args, **env)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_then_inspect(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sim = run_cli(home, "simulate", "--regions", "sg", "--days", "1", "--orders-per-day", "10", "--seed", "7")
    assert sim.returncode == 0, sim.stderr
    assert "sg.shop.orders" in sim.stdout
    assert (home / "truth").is_dir()
    topics = run_cli(home, "events", "topics", "--prefix", "sg.")
    assert topics.returncode == 0
    assert "sg.shop.orders" in topics.stdout
    assert "vn.shop.orders" not in topics.stdout


def test_checkout_bursts_never_oversell(tmp_path: Path) -> None:
    home = tmp_path / "home"
    sim = run_cli(home, "simulate", "--regions", "vn,th", "--days", "2", "--orders-per-day", "50")
    assert sim.returncode == 0, sim.stderr
    replay = run_cli(home, "inventory", "bursts", "--json")
    assert replay.returncode == 0, replay.stderr
    outcomes = json.loads(replay.stdout)
    assert outcomes, "the simulator injected no checkout burst"
    for burst in outcomes:
        assert burst["shopops_accepted"] == min(burst["units_available"], burst["attempts"])
        assert burst["shopops_oversold"] == 0
    assert sum(b["legacy_oversold"] for b in outcomes) > 0


def test_stock_from_cdc_sync_and_drift(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert (
        run_cli(home, "simulate", "--regions", "sg", "--days", "1", "--orders-per-day", "20").returncode == 0
    )
    before = run_cli(home, "inventory", "audit", "--from-cdc", "--json")
    assert before.returncode == 1  # the store has no stock yet: every item drifted
    drifted = json.loads(before.stdout)["drift"]
    assert drifted
    assert all(d["store_on_hand"] is None for d in drifted)
    synced = run_cli(home, "inventory", "sync-cdc", "--regions", "sg")
    assert synced.returncode == 0, synced.stderr
    assert f"{len(drifted)} items changed" in synced.stdout
    after = run_cli(home, "inventory", "audit", "--from-cdc", "--json")
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["drift"] == []
    one = drifted[0]
    stock = run_cli(home, "inventory", "stock", one["sku"], "--json")
    levels = {lv["warehouse"]: lv for lv in json.loads(stock.stdout)}
    assert levels[one["warehouse"]]["on_hand"] == one["source_on_hand"]
    empty = run_cli(tmp_path / "empty", "inventory", "sync-cdc")
    assert empty.returncode == 3
    assert "no <region>.inventory.stock_levels topic" in empty.stderr
