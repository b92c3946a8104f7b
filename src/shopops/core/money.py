"""Currencies and exact money arithmetic (Decimal, quantised to each currency's minor unit)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from shopops.core.errors import InvalidInputError

#: ISO 4217 minor units of the currencies shopops handles.
MINOR_UNITS: dict[str, int] = {"VND": 0, "SGD": 2, "THB": 2, "USD": 2, "MYR": 2, "IDR": 0, "PHP": 2}


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise InvalidInputError(
            f"unknown currency {currency!r}", hint=f"known currencies: {', '.join(sorted(MINOR_UNITS))}"
        ) from None


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round ``amount`` to the minor unit of ``currency`` (banker's rounding, as ledgers do)."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_EVEN)
