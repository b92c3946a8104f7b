"""The regions the company trades in, each with its currency and time zone."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shopops.core.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class Region:
    code: str  # lower-case, used in topic names: ``vn.shop.orders``
    name: str
    currency: str
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


REGIONS: dict[str, Region] = {
    r.code: r
    for r in (
        Region("vn", "Vietnam", "VND", "Asia/Ho_Chi_Minh"),
        Region("sg", "Singapore", "SGD", "Asia/Singapore"),
        Region("th", "Thailand", "THB", "Asia/Bangkok"),
        Region("my", "Malaysia", "MYR", "Asia/Kuala_Lumpur"),
        Region("id", "Indonesia", "IDR", "Asia/Jakarta"),
        Region("ph", "Philippines", "PHP", "Asia/Manila"),
    )
}


def parse_regions(text: str | list[str]) -> list[Region]:
    """Parse ``"vn,sg,th"`` (or a list) into regions, rejecting unknown codes with the known ones."""
    codes = [c.strip().lower() for c in (text.split(",") if isinstance(text, str) else text) if c.strip()]
    if not codes:
        raise InvalidInputError("no region given", hint=f"use a comma-separated list of {', '.join(REGIONS)}")
    unknown = [c for c in codes if c not in REGIONS]
    if unknown:
        raise InvalidInputError(
            f"unknown region(s): {', '.join(unknown)}", hint=f"known regions: {', '.join(REGIONS)}"
        )
    return [REGIONS[c] for c in dict.fromkeys(codes)]
