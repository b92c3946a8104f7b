"""Every injected pain: recorded in the ground truth at its configured rate, and really in the events."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.unit.simulator.helpers import World, simulate

from shopops.events.debezium import Op
from shopops.simulator.model import PROBABILITY_RATES, SimulationConfig, columns_at

PER_REGION_DAY = ("checkout_burst", "fraud_ring_burst")


def assert_rates(world: World) -> None:
    report, config = world.report, world.config
    rates = config.effective_rates()
    for kind in PROBABILITY_RATES:
        n, p = report.exposures.get(kind, 0), rates[kind]
        assert n > 0, kind
        seen = report.pains.get(kind, 0)
        # a binomial count: within five standard deviations of n * p
        assert abs(seen - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 2, (kind, seen, n, p)
    region_days = len(config.regions) * config.days
    for kind in PER_REGION_DAY:
        assert report.exposures[kind] == region_days
        expected = rates[kind] * region_days
        assert abs(report.pains.get(kind, 0) - expected) <= 5 * math.sqrt(expected) + 2, kind
    assert report.pains["schema_change"] == 4 * len(config.regions)


def test_pain_rates_with_ten_fold_multiplier(world: World) -> None:
    assert_rates(world)
    # the ten-fold world shows every kind of pain
    assert set(world.report.pains) == {p["kind"] for p in world.truth_rows("pains")}
    assert len(world.report.pains) == 14


def test_pain_rates_at_default_rates(tmp_path: Path) -> None:
    config = SimulationConfig(
        regions=["vn", "sg", "th"], days=3, orders_per_day=300, seed=11, envelope="plain"
    )
    assert_rates(simulate(config, tmp_path))


def test_pain_counts_match_the_truth_table(world: World) -> None:
    counts: dict[str, int] = defaultdict(int)
    for row in world.truth_rows("pains"):
        counts[row["kind"]] += 1
        assert row["region"] in world.config.regions
        assert row["topic"].startswith(f"{row['region']}.")
        assert isinstance(orjson.loads(row["key"]), dict)
        assert isinstance(orjson.loads(row["detail"]), dict)
    assert counts == world.report.pains


def _all(world: World, table: str, key_field: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for region in world.config.regions:
        out.update(world.latest(f"{region}.{table}", key_field))
    return out


def _history(world: World, table: str, key_field: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for region in world.config.regions:
        out.update(world.history(f"{region}.{table}", key_field))
    return out


def test_duplicate_events_are_emitted_twice(world: World) -> None:
    dups = world.pains("duplicate_event")
    assert dups
    for pain in dups:
        records = world.log.records(pain["topic"])
        key = orjson.loads(pain["key"])
        detail = orjson.loads(pain["detail"])
        matches = [
            r
            for r in records
            if r.value is not None
            and world.event(r).key == key
            and world.event(r).source["lsn"] == detail["lsn"]
            and world.event(r).source["ts_ms"] == pain["ts_ms"]
        ]
        assert len(matches) == 2, pain
        assert matches[0].value == matches[1].value
        assert matches[0].key == matches[1].key
        assert matches[1].offset == matches[0].offset + 1, "re-delivered right after the original"


def test_missing_payments_have_no_payment_record(world: World) -> None:
    payments_by_order = {row["order_id"] for row in _all(world, "payments.payments", "payment_id").values()}
    orders = _history(world, "shop.orders", "order_id")
    pains = world.pains("missing_payment")
    assert pains
    for pain in pains:
        assert pain["order_id"] not in payments_by_order
        statuses = [e.after["status"] for e in orders[pain["order_id"]]]
        assert "paid" in statuses
    ledger = _all(world, "finance.ledger_entries", "entry_id").values()
    missing = {p["order_id"] for p in pains}
    booked = [e for e in ledger if e["order_id"] in missing and e["kind"] == "order_paid"]
    assert booked
    assert all(e["payment_id"] is None for e in booked), "booked as paid, with no payment to match"


def test_late_and_cross_region_payments_arrive_days_later(world: World) -> None:
    payments = _history(world, "payments.payments", "payment_id")
    orders = _history(world, "shop.orders", "order_id")
    for kind in ("late_payment", "cross_region_payment"):
        pains = world.pains(kind)
        assert pains, kind
        for pain in pains:
            detail = orjson.loads(pain["detail"])
            paid = next(e for e in orders[pain["order_id"]] if e.after["status"] == "paid")
            assert detail["delay_hours"] >= 24
            assert detail["local_days_late"] >= 1
            assert pain["ts_ms"] - paid.source["ts_ms"] >= 24 * 3600 * 1000 - 3000
            if not pain["in_window"]:
                assert pain["payment_id"] not in payments
                continue
            created = payments[pain["payment_id"]][0]
            assert created.op is Op.CREATE
            assert created.after["status"] == "captured"
            assert created.source["ts_ms"] == pain["ts_ms"]
            assert created.topic == pain["topic"] == f"{detail['payment_region']}.payments.payments"
            assert created.after["merchant_region"] == detail["order_region"]
            if kind == "cross_region_payment":
                assert detail["payment_region"] != detail["order_region"]
            else:
                assert detail["payment_region"] == detail["order_region"]


def test_currency_mismatches_are_paid_in_usd(world: World) -> None:
    payments = _all(world, "payments.payments", "payment_id")
    orders = _all(world, "shop.orders", "order_id")
    pains = world.pains("currency_mismatch")
    assert pains
    for pain in pains:
        payment = payments[pain["payment_id"]]
        order = orders[pain["order_id"]]
        assert payment["currency"] == "USD" != order["currency"]
        assert payment["amount"] == pain["actual_amount"]
        assert order["total"] == pain["expected_amount"]
        rate = Decimal(orjson.loads(pain["detail"])["fx_rate"])
        assert abs(Decimal(order["total"]) / rate - Decimal(payment["amount"])) <= Decimal("0.005")


def test_orphan_payments_point_at_no_order(world: World) -> None:
    orders = _all(world, "shop.orders", "order_id")
    payments = _all(world, "payments.payments", "payment_id")
    pains = world.pains("orphan_payment")
    assert pains
    for pain in pains:
        assert payments[pain["payment_id"]]["order_id"] == pain["order_id"]
        assert pain["order_id"] not in orders


def test_ledger_breaks_book_another_amount_than_the_order(world: World) -> None:
    ledger = _all(world, "finance.ledger_entries", "entry_id").values()
    orders = _all(world, "shop.orders", "order_id")
    pains = world.pains("ledger_break")
    assert pains
    for pain in pains:
        journal = [e for e in ledger if e["journal_id"] == orjson.loads(pain["key"])["journal_id"]]
        clearing = next(e for e in journal if e["account"] == "provider_clearing")
        assert clearing["amount"] == pain["actual_amount"] != orders[pain["order_id"]]["total"]
        debit = sum(Decimal(e["amount"]) for e in journal if e["side"] == "debit")
        credit = sum(Decimal(e["amount"]) for e in journal if e["side"] == "credit")
        assert debit == credit, "the journal itself still balances"


def test_every_journal_balances(world: World) -> None:
    journals: dict[str, Decimal] = defaultdict(Decimal)
    for entry in _all(world, "finance.ledger_entries", "entry_id").values():
        journals[entry["journal_id"]] += Decimal(entry["amount"]) * (1 if entry["side"] == "debit" else -1)
    assert journals
    assert all(v == 0 for v in journals.values())


def test_fx_and_rounding_differences_show_in_settlements(world: World) -> None:
    payments = _all(world, "payments.payments", "payment_id")
    published = {
        (row["rate_date"], row["quote"]): row["rate"] for row in _all_fx(world) if row["base"] == "USD"
    }
    fx = world.pains("fx_difference")
    rounding = world.pains("rounding_difference")
    assert fx
    assert rounding
    for pain in fx + rounding:
        if not pain["in_window"]:
            continue
        payment = payments[pain["payment_id"]]
        assert payment["status"] in ("settled", "partially_refunded", "charged_back")
        assert payment["settlement_currency"] == pain["currency"]
        if pain["kind"] == "rounding_difference":
            assert payment["settlement_amount"] == pain["actual_amount"]
            assert abs(Decimal(pain["actual_amount"]) - Decimal(pain["expected_amount"])) in (
                Decimal(1),
                Decimal("0.01"),
            )
    for pain in fx:
        detail = orjson.loads(pain["detail"])
        assert detail["applied_rate"] != detail["reference_rate"]
        if pain["in_window"]:
            payment = payments[pain["payment_id"]]
            assert payment["settlement_fx_rate"] == detail["applied_rate"]
            day = (date.fromisoformat(detail["rate_date"]) - date(1970, 1, 1)).days
            assert published[(day, detail["from_currency"])] == detail["reference_rate"]


def _all_fx(world: World) -> list[dict[str, Any]]:
    return [e.after for region in world.config.regions for e in world.rows(f"{region}.finance.fx_rates")]


def test_partial_refunds_refund_part_of_the_payment(world: World) -> None:
    payments = _history(world, "payments.payments", "payment_id")
    pains = world.pains("partial_refund")
    assert pains
    for pain in (p for p in pains if p["in_window"]):
        refund = next(e for e in payments[pain["payment_id"]] if e.after["status"] == "partially_refunded")
        assert refund.after["refunded_amount"] == pain["actual_amount"]
        assert Decimal(0) < Decimal(pain["actual_amount"]) < Decimal(pain["expected_amount"])
        assert refund.before["status"] == "settled"


def test_schema_changes_change_columns_from_the_recorded_offsets(world: World) -> None:
    changes = world.truth_rows("schema_changes")
    assert {(c["topic"].split(".", 1)[1], c["kind"]) for c in changes} == {
        ("shop.orders", "column_added"),
        ("shop.customers", "column_renamed"),
        ("logistics.shipments", "type_changed"),
        ("payments.payments", "made_nullable"),
    }
    for change in changes:
        table = f"{change['database']}.{change['table']}"
        v1 = [c.name for c in columns_at(table, 1)]
        v2 = [c.name for c in columns_at(table, 2)]
        first = {int(p): o for p, o in orjson.loads(change["first_offsets"]).items()}
        assert change["first_ts_ms"] >= change["change_ts_ms"]
        firsts = []
        for partition, records in enumerate(world.log.logs[change["topic"]]):
            for record in records:
                if record.value is None:
                    continue
                event = world.event(record)
                new = partition in first and record.offset >= first[partition]
                assert list(event.after or event.before or {}) == (v2 if new else v1), (
                    change["topic"],
                    record.offset,
                )
                assert (event.source["ts_ms"] >= change["change_ts_ms"]) == new
                if new and record.offset == first[partition]:
                    firsts.append(event.source["ts_ms"])
        assert min(firsts) == change["first_ts_ms"]
        if change["kind"] == "type_changed":
            weights = {type(e.after["weight_kg"]) for e in world.rows(change["topic"]) if e.after}
            assert weights == {float, str}


def test_checkout_bursts_oversell_the_last_units(world: World) -> None:
    checkouts = _history(world, "inventory.checkouts", "checkout_id")
    orders = _all(world, "shop.orders", "order_id")
    bursts = world.truth_rows("checkout_bursts")
    assert bursts
    assert len(bursts) == world.report.pains["checkout_burst"]
    assert any(b["oversold"] > 0 for b in bursts)
    for burst in bursts:
        assert len(burst["checkout_ids"]) == burst["attempts"] > burst["units_available"]
        assert burst["should_win"] == burst["units_available"]
        assert burst["accepted_by_source"] == len(burst["accepted_ids"]) == len(burst["order_ids"])
        assert burst["oversold"] == burst["accepted_by_source"] - burst["units_available"]
        assert len(burst["cancelled_order_ids"]) == burst["oversold"]
        created = [checkouts[c][0].after["created_at"] for c in burst["checkout_ids"]]
        assert (max(created) - min(created)) / 1000 == burst["window_ms"] < 25
        succeeded = {c for c in burst["checkout_ids"] if checkouts[c][-1].after["status"] == "succeeded"}
        assert succeeded == set(burst["accepted_ids"])
        assert all(checkouts[c][0].after["sku"] == burst["sku"] for c in burst["checkout_ids"])
        for order_id in burst["cancelled_order_ids"]:
            assert orders[order_id]["status"] == "cancelled"
    # the stock of a burst SKU went below zero: the oversell is visible in the stock levels
    oversold = {(b["warehouse_id"], b["sku"]) for b in bursts if b["oversold"]}
    negative = {
        (e.after["warehouse_id"], e.after["sku"])
        for region in world.config.regions
        for e in world.rows(f"{region}.inventory.stock_levels")
        if e.after["on_hand"] < 0
    }
    assert oversold <= negative


def test_fraud_rings_share_devices_cards_and_addresses(world: World) -> None:
    orders = _all(world, "shop.orders", "order_id")
    truth = {r["order_id"]: r for r in world.truth_rows("fraud_truth")}
    pains = world.pains("fraud_ring_burst")
    assert pains
    for pain in pains:
        detail = orjson.loads(pain["detail"])
        assert detail["order_ids"]
        for order_id in detail["order_ids"]:
            order = orders[order_id]
            assert order["device_id"] in detail["devices"]
            assert order["card_fingerprint"] in detail["cards"]
            assert order["shipping_address_hash"] == detail["address_hash"]
            assert order["customer_id"] in detail["members"]
            assert truth[order_id]["ring_id"] == detail["ring_id"]
        times = sorted(orders[o]["created_at"] for o in detail["order_ids"])
        assert times[-1] - times[0] < 3600 * 1_000_000, "a velocity burst"
    ring = [r["fraud_probability"] for r in truth.values() if r["ring_id"]]
    normal = [r["fraud_probability"] for r in truth.values() if not r["ring_id"]]
    assert sum(ring) / len(ring) > 5 * sum(normal) / len(normal)


def test_delayed_shipments_come_from_a_stretched_distribution(world: World) -> None:
    truth = {r["shipment_id"]: r for r in world.truth_rows("delivery_truth")}
    pains = world.pains("shipment_delay")
    assert pains
    for pain in pains:
        row = truth[orjson.loads(pain["key"])["shipment_id"]]
        assert row["disrupted"]
        assert row["disruption_factor"] >= 1.8
    disrupted = [r for r in truth.values() if r["disrupted"]]
    normal = [r for r in truth.values() if not r["disrupted"]]
    assert len(disrupted) == len(pains)
    slip_rate = sum(r["slipped"] for r in disrupted) / len(disrupted)
    assert slip_rate > 2 * sum(r["slipped"] for r in normal) / len(normal)


@pytest.mark.parametrize("kind", ["missing_payment", "late_payment", "ledger_break", "partial_refund"])
def test_pains_name_their_order(world: World, kind: str) -> None:
    orders = _all(world, "shop.orders", "order_id")
    for pain in world.pains(kind):
        assert pain["order_id"] in orders
