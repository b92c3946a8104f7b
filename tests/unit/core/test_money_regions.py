from decimal import Decimal

import pytest

from shopops.core.errors import InvalidInputError
from shopops.core.money import quantize
from shopops.domain.regions import parse_regions


def test_quantize_uses_minor_units_and_bankers_rounding() -> None:
    assert quantize(Decimal("1000.5"), "VND") == Decimal("1000")
    assert quantize(Decimal("1001.5"), "VND") == Decimal("1002")
    assert quantize(Decimal("10.125"), "SGD") == Decimal("10.12")


def test_unknown_currency() -> None:
    with pytest.raises(InvalidInputError, match="unknown currency 'XXX'"):
        quantize(Decimal(1), "XXX")


def test_parse_regions() -> None:
    assert [r.code for r in parse_regions("VN, sg,th,sg")] == ["vn", "sg", "th"]
    assert parse_regions("vn")[0].currency == "VND"
    with pytest.raises(InvalidInputError, match="unknown region"):
        parse_regions("vn,xx")
    with pytest.raises(InvalidInputError, match="no region"):
        parse_regions(" , ")
