"""Hand-built input tables: one order (or payment) per situation the engine must classify."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shopops.reconciliation.tables import SCHEMAS

DAY = date(2026, 1, 5)
EPOCH_DAY = (DAY - date(1970, 1, 1)).days
H = 3_600_000_000
#: 00:00 on DAY in Singapore (UTC+8), in microseconds since the epoch.
SG_MIDNIGHT = EPOCH_DAY * 24 * H - 8 * H


class Builder:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def add(self, region: str, table: str, **row: Any) -> None:
        self.rows.setdefault(region, {}).setdefault(table, []).append({"region": region, **row})

    def order(
        self, oid: str, total: str, status: str = "delivered", at: float = 2.0, region: str = "sg"
    ) -> None:
        t = SG_MIDNIGHT + int(at * H)
        self.add(
            region,
            "orders",
            order_id=oid,
            status=status,
            currency="SGD",
            total=Decimal(total),
            created_at=t,
            updated_at=t,
        )

    def payment(
        self,
        pid: str,
        oid: str,
        amount: str,
        *,
        currency: str = "SGD",
        region: str = "sg",
        created: float = 2.0,
        captured: float | None = 2.1,
        fee: str | None = "0",
        settled: float | None = None,
        s_currency: str | None = None,
        s_amount: str | None = None,
        s_rate: float | None = None,
        status: str = "captured",
        ref: str | None = None,
    ) -> None:
        def ts(hours: float | None) -> int | None:
            return None if hours is None else SG_MIDNIGHT + int(hours * H)

        self.add(
            region,
            "payments",
            payment_id=pid,
            order_id=oid,
            merchant_region="sg",
            provider="LionPay",
            provider_ref=ref or f"ref-{pid}",
            status=status if settled is None else "settled",
            currency=currency,
            amount=Decimal(amount),
            fee=None if fee is None else Decimal(fee),
            settlement_currency=s_currency,
            settlement_amount=None if s_amount is None else Decimal(s_amount),
            settlement_fx_rate=s_rate,
            refunded_amount=Decimal(0),
            captured_at=ts(captured),
            settled_at=ts(settled),
            created_at=ts(created),
        )

    def journal(
        self,
        oid: str,
        amount: str,
        kind: str = "order_paid",
        side: str = "debit",
        at: float = 2.2,
        entry: str | None = None,
    ) -> None:
        n = sum(len(t.get("ledger_entries", [])) for t in self.rows.values())
        eid = entry or f"sg-j-{n:06d}-1"
        self.add(
            "sg",
            "ledger_entries",
            entry_id=eid,
            journal_id=eid.rsplit("-", 1)[0],
            kind=kind,
            account="provider_clearing",
            side=side,
            amount=Decimal(amount),
            currency="SGD",
            order_id=oid,
            payment_id=None,
            booked_at=SG_MIDNIGHT + int(at * H),
        )

    def rate(self, day: date, quote: str, rate: float, region: str = "sg") -> None:
        self.add(
            region, "fx_rates", rate_date=(day - date(1970, 1, 1)).days, base="USD", quote=quote, rate=rate
        )

    def write(self, root: Path) -> Path:
        for region, tables in self.rows.items():
            for name in ("orders", "payments", "ledger_entries", "fx_rates"):
                rows = tables.get(name, [])
                schema = SCHEMAS[name]
                cols = {f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}
                (root / region).mkdir(parents=True, exist_ok=True)
                pq.write_table(pa.table(cols), root / region / f"{name}.parquet")
        return root


def clean_order(b: Builder, oid: str, pid: str, total: str = "100.00") -> None:
    """Paid, captured, settled in SGD net of a 1.00 fee, booked and settled in the ledger."""
    b.order(oid, total)
    net = str(Decimal(total) - 1)
    b.payment(pid, oid, total, fee="1.00", settled=10.0, s_currency="SGD", s_amount=net)
    b.journal(oid, total)
    b.journal(oid, total, kind="payment_settled", side="credit", at=10.0)


def build_cases(root: Path) -> tuple[Path, dict[tuple[str, str], str]]:
    """Input tables under ``root`` and the exceptions they must give: (class, record) -> why."""
    b = Builder()
    b.rate(DAY, "SGD", 1.34)
    b.rate(DAY, "VND", 25000.0)
    expected: dict[tuple[str, str], str] = {}

    clean_order(b, "sg-o-01", "sg-p-01")
    # A cancelled order refunded in full, and an order not paid yet: nothing to report.
    b.order("sg-o-02", "20.00", status="cancelled")
    b.payment("sg-p-02", "sg-o-02", "20.00", status="refunded")
    b.journal("sg-o-02", "20.00")
    b.order("sg-o-03", "30.00", status="placed")

    b.order("sg-o-10", "40.00")
    b.journal("sg-o-10", "40.00")
    expected[("missing_payment", "orders:sg-o-10")] = "paid, no payment"

    b.payment("sg-p-11", "sg-o-ghost", "15.00")
    expected[("payment_without_order", "payments:sg-p-11")] = "payment for a ghost order"

    b.order("sg-o-12", "50.00")
    b.payment("sg-p-12", "sg-o-12", "45.00")
    b.journal("sg-o-12", "50.00")
    expected[("amount_mismatch", "orders:sg-o-12")] = "captured 45 of 50"

    b.order("sg-o-13", "13.40")
    b.payment("sg-p-13", "sg-o-13", "10.00", currency="USD")
    b.journal("sg-o-13", "13.40")
    expected[("currency_mismatch", "orders:sg-o-13")] = "paid in USD"

    b.order("sg-o-14", "60.00")
    b.payment("sg-p-14", "sg-o-14", "60.00", created=32.5, captured=2.1)
    b.journal("sg-o-14", "60.00")
    expected[("late_settlement", "payments:sg-p-14")] = "recorded 30 h after capture"

    b.order("sg-o-15", "70.00")
    b.payment("sg-p-15", "sg-o-15", "70.00", region="vn", created=40.0)
    b.journal("sg-o-15", "70.00")
    expected[("cross_region_payment", "payments:sg-p-15")] = "recorded by vn's provider"

    # Settled in USD at 1.35 SGD/USD where the reference is 1.34: 0.75 % off, within 2.5 %.
    b.order("sg-o-16", "134.00")
    b.payment("sg-p-16", "sg-o-16", "134.00", settled=12.0, s_currency="USD", s_amount="99.26", s_rate=1.35)
    b.journal("sg-o-16", "134.00")
    b.journal("sg-o-16", "134.00", kind="payment_settled", side="credit", at=12.0)
    expected[("fx_difference", "payments:sg-p-16")] = "rate 0.75% off"

    # At 1.40 SGD/USD: 4.5 % off the reference, beyond the tolerance.
    b.order("sg-o-17", "140.00")
    b.payment("sg-p-17", "sg-o-17", "140.00", settled=12.0, s_currency="USD", s_amount="100.00", s_rate=1.40)
    b.journal("sg-o-17", "140.00")
    b.journal("sg-o-17", "140.00", kind="payment_settled", side="credit", at=12.0)
    expected[("amount_mismatch", "payments:sg-p-17")] = "rate 4.5% off"

    # A clean conversion at the reference rate (rounded half-even to the cent): nothing to report.
    b.order("sg-o-18", "100.00")
    b.payment("sg-p-18", "sg-o-18", "100.00", settled=12.0, s_currency="USD", s_amount="74.63", s_rate=1.34)
    b.journal("sg-o-18", "100.00")
    b.journal("sg-o-18", "100.00", kind="payment_settled", side="credit", at=12.0)

    b.order("sg-o-19", "80.00")
    b.payment("sg-p-19", "sg-o-19", "80.00", fee="1.00", settled=10.0, s_currency="SGD", s_amount="79.01")
    b.journal("sg-o-19", "80.00")
    b.journal("sg-o-19", "80.00", kind="payment_settled", side="credit", at=10.0)
    expected[("rounding_difference", "payments:sg-p-19")] = "one cent over"

    b.order("sg-o-20", "90.00")
    b.payment("sg-p-20", "sg-o-20", "90.00", fee="1.00", settled=10.0, s_currency="SGD", s_amount="85.00")
    b.journal("sg-o-20", "90.00")
    b.journal("sg-o-20", "90.00", kind="payment_settled", side="credit", at=10.0)
    expected[("amount_mismatch", "payments:sg-p-20")] = "settled 4.00 short"

    b.order("sg-o-21", "100.00")
    b.payment("sg-p-21", "sg-o-21", "100.00")
    b.journal("sg-o-21", "120.00")
    expected[("ledger_break", "orders:sg-o-21")] = "booked 120 of 100"

    b.order("sg-o-22", "25.00")
    b.payment("sg-p-22", "sg-o-22", "25.00")
    expected[("ledger_break", "orders:sg-o-22")] = "no order journal"

    # The same payment row twice: a duplicate, and no amount mismatch for it.
    b.order("sg-o-23", "35.00")
    b.payment("sg-p-23", "sg-o-23", "35.00")
    b.payment("sg-p-23", "sg-o-23", "35.00")
    b.journal("sg-o-23", "35.00")
    expected[("duplicate", "payments:sg-p-23")] = "payment row twice"

    # Settled in USD the next day, which has no reference rate.
    b.order("sg-o-24", "67.00")
    b.payment("sg-p-24", "sg-o-24", "67.00", settled=30.0, s_currency="USD", s_amount="50.00", s_rate=1.34)
    b.journal("sg-o-24", "67.00")
    b.journal("sg-o-24", "67.00", kind="payment_settled", side="credit", at=30.0)
    expected[("missing_fx_rate", "payments:sg-p-24")] = "no USD/SGD rate for the settlement day"

    b.order("sg-o-25", "10.00")
    b.payment("sg-p-25", "sg-o-25", "10.00", currency="XYZ")
    b.journal("sg-o-25", "10.00")
    expected[("unknown_currency", "payments:sg-p-25")] = "currency XYZ"
    expected[("currency_mismatch", "orders:sg-o-25")] = "paid in XYZ"

    # Settled long before the ledger's last booking but never booked: a break. The ledger's last
    # booking is at 40 h (below); a settlement at 38 h is within the 6 h booking window: pending.
    clean_order(b, "sg-o-26", "sg-p-26")
    b.rows["sg"]["ledger_entries"].pop()  # drop its settlement journal
    expected[("ledger_break", "orders:sg-o-26")] = "settled, not booked"
    b.order("sg-o-27", "33.00")
    b.payment("sg-p-27", "sg-o-27", "33.00", settled=38.0, s_currency="SGD", s_amount="33.00")
    b.journal("sg-o-27", "33.00")
    b.journal("sg-o-99", "1.00", at=40.0)  # an order outside the window: the ledger's high-water mark
    b.order("sg-o-99", "1.00", at=-30.0)

    # vn has no orders of its own here, only the cross-region payment above.
    b.rate(DAY, "VND", 25000.0, region="vn")
    return b.write(root), expected
