"""Rules files: the shipped ones load; malformed ones are refused naming file, line or field."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from shopops.core.errors import InvalidInputError
from shopops.reconciliation.model import CLASS_DESCRIPTIONS, ExceptionClass, Window, parse_day, severity
from shopops.reconciliation.rules import PACKAGED_RULES, RulesError, load_region_rules, load_rules

GOOD = (PACKAGED_RULES / "sg.yaml").read_text()


def test_the_shipped_rules_load_for_every_region() -> None:
    rules = load_rules(["vn", "sg", "th", "my", "id", "ph"])
    assert rules["vn"].currency == "VND"
    assert rules["vn"].minor_units == 0
    assert rules["sg"].ref == "sg@v1"
    assert rules["th"].utc_offset_us(date(2026, 1, 1)) == 7 * 3_600_000_000


def _write(tmp_path: Path, text: str, name: str = "sg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("region: sg\nversion: [1\n", r"sg\.yaml:\d+:\d+: not valid YAML"),
        ("- just\n- a list\n", "a rules file is a YAML mapping"),
        (GOOD.replace("version: 1", "version: 0"), "version: Input should be greater than or equal to 1"),
        (GOOD.replace("currency: SGD", "currency: VND"), "currency VND does not match region sg"),
        (GOOD.replace("fx_rate_pct: 2.5", "fx_rate_pct: -1"), "tolerance.fx_rate_pct"),
        (GOOD.replace("timezone: Asia/Singapore", "timezone: Mars/Olympus"), "unknown time zone"),
        (GOOD + "\nmatch_everything: true\n", "match_everything: Extra inputs are not permitted"),
        (GOOD.replace("region: sg", "region: zz"), "unknown region 'zz'"),
    ],
)
def test_malformed_rules_are_refused_with_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RulesError, match=message) as info:
        load_region_rules(_write(tmp_path, text))
    assert "sg.yaml" in info.value.message
    assert isinstance(info.value, InvalidInputError)


def test_a_file_must_be_named_after_its_region(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="does not match the file name"):
        load_region_rules(_write(tmp_path, GOOD, "th.yaml"))


def test_a_missing_file_or_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no such rules file"):
        load_rules(["sg"], tmp_path)
    with pytest.raises(RulesError, match="rules directory does not exist"):
        load_rules(["sg"], tmp_path / "nowhere")


def test_windows_and_dates() -> None:
    assert Window(date(2026, 1, 1), date(2026, 1, 3)).days == 3
    with pytest.raises(InvalidInputError, match="empty window"):
        Window(date(2026, 1, 3), date(2026, 1, 1))
    with pytest.raises(InvalidInputError, match="is not a date"):
        parse_day("2026-13-01", "--from")


def test_every_class_is_described() -> None:
    assert set(CLASS_DESCRIPTIONS) == set(ExceptionClass)
    assert severity(ExceptionClass.FX_DIFFERENCE) == "info"
    assert severity(ExceptionClass.LEDGER_BREAK) == "break"
