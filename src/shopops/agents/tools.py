"""The agents' tools: read-only look-ups over shopops' own services, each with a JSON-Schema.

A tool is a :class:`ToolSpec`: a name and a description the model chooses by, a pydantic model of
its arguments (its JSON-Schema is what the model sees), whether it only reads, how to find the
region of the data it reads (for the residency check of the policy) and, for tools about a
customer's orders, whose data the arguments point at (the runtime refuses a call about another
customer before the tool runs). Tools never raise to the model: every outcome is a
:class:`ToolOutcome` with a plain message, and a service that is not configured says so.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shopops.agents.model import ToolOutcome, ToolStatus, region_of
from shopops.agents.orders import OrderFacts, Row
from shopops.core.errors import ShopopsError
from shopops.core.logging import get_logger
from shopops.domain.regions import REGIONS

if TYPE_CHECKING:
    from shopops.core.settings import AgentsSettings
    from shopops.events.port import EventLog
    from shopops.inventory.service import InventoryService
    from shopops.reconciliation.service import ReconciliationService

log = get_logger(__name__)

RegionCode = Literal["vn", "sg", "th", "my", "id", "ph"]
_ORDER_PATTERN = r"^[a-z]{2}-o-\d{4,12}$"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderArgs(_Args):
    order_id: str = Field(pattern=_ORDER_PATTERN, description="The order id, e.g. vn-o-000000123")


class HistoryArgs(_Args):
    customer_id: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}-c-\d{4,12}$",
        description="The customer id (only the customer the agent acts for)",
    )
    limit: int = Field(default=5, ge=1, le=20, description="How many recent orders")


class SkuArgs(_Args):
    sku: str = Field(pattern=r"^[A-Z]{2}-SKU-\d{3,8}$", description="The product SKU, e.g. VN-SKU-00027")


class ReconArgs(_Args):
    region: RegionCode | None = Field(default=None, description="Region code, e.g. vn, sg, th")
    exception_class: (
        Literal[
            "missing_payment",
            "payment_without_order",
            "amount_mismatch",
            "fx_difference",
            "rounding_difference",
            "duplicate",
            "late_settlement",
            "cross_region_payment",
            "currency_mismatch",
            "ledger_break",
            "missing_fx_rate",
            "unknown_currency",
        ]
        | None
    ) = Field(default=None, description="Exception class, e.g. ledger_break, missing_payment")


class DriftArgs(_Args):
    subject: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}\.[a-z0-9_]+\.[a-z0-9_]+(-value)?$",
        description="e.g. vn.shop.orders-value",
    )


class DatasetArgs(_Args):
    dataset: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+\.[a-z0-9_]+$", description="Dataset, e.g. shop.orders"
    )


class MetricArgs(_Args):
    name: str | None = Field(
        default=None,
        pattern=r"^shopops_[a-z0-9_]*$",
        description="Metric name or prefix, e.g. shopops_inventory",
    )


class RegionArgs(_Args):
    region: RegionCode | None = Field(default=None, description="Region code, e.g. vn, sg, th")


# --- the services a tool may use ----------------------------------------------------------------


class EtaPredictor:
    """The shipment ETA model behind ``POST /v1/predict/eta`` of an ML serving process (by URL)."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 5.0) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s

    def predict(self, shipment: Row, order: Row) -> dict[str, Any]:
        """P50/P90 delivery hours and times of ``shipment``; :class:`ConnectionError` when it fails."""
        try:
            response = httpx.post(
                self.url, json=eta_request(shipment), headers=self.headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise ConnectionError(f"the ETA service at {self.url} cannot be reached: {exc}") from exc
        if response.status_code != 200:
            raise ConnectionError(
                f"the ETA service at {self.url} answered {response.status_code}: {response.text[:200]}"
            )
        result: dict[str, Any] = response.json()
        return result


class InProcessEta:
    """The ETA champion served by this process (``shopops.ml.serving``), called without HTTP."""

    def __init__(self, service: Callable[[], Any]) -> None:
        self._service = service

    def predict(self, shipment: Row, order: Row) -> dict[str, Any]:
        body = eta_request(shipment)
        entity = {k: str(v) for k, v in body.items() if v is not None}
        try:
            scored = self._service().score("eta", entity)
        except ShopopsError as exc:
            raise ConnectionError(exc.message) from exc
        start = datetime.fromtimestamp(int(body["event_timestamp"]) / 1000, UTC)
        p50, p90 = scored.outputs["p50_hours"], scored.outputs["p90_hours"]
        return {
            "p50_hours": p50,
            "p90_hours": p90,
            "p50_at": (start + timedelta(hours=p50)).isoformat(),
            "p90_at": (start + timedelta(hours=p90)).isoformat(),
            "model": scored.model,
            "version": scored.version,
        }


def eta_request(shipment: Row) -> dict[str, Any]:
    """The body of ``POST /v1/predict/eta`` for a shipment: its lane, ids and creation time."""
    created = shipment.get("created_at")
    return {
        "carrier": shipment["carrier"],
        "route": shipment["route"],
        "shipment_id": shipment["shipment_id"],
        "order_id": shipment["order_id"],
        "warehouse_id": shipment.get("warehouse_id"),
        "event_timestamp": int(created) // 1000 if isinstance(created, int) else None,
    }


@dataclass
class Toolbox:
    """The long-lived services behind the tools of one process (each may be missing)."""

    settings: AgentsSettings
    home: Path
    orders: OrderFacts | None = None
    inventory: InventoryService | None = None
    reconciliation: Callable[[], ReconciliationService] | None = None
    event_log: EventLog | None = None
    eta: EtaPredictor | InProcessEta | None = None
    #: The data-quality service (``shopops.quality``), opened on first use.
    quality: Callable[[], Any] | None = None
    schema_changes_topic: str = "shopops.schemas.changes"
    quarantine_topic: str = "shopops.schemas.quarantine"

    def close(self) -> None:
        """Close what the tools opened on first use."""
        closer = getattr(self.quality, "close", None)
        if callable(closer):
            closer()


@dataclass
class ToolContext:
    """A toolbox plus who the run acts for."""

    box: Toolbox
    lang: str = "en"
    #: The customer the support agent acts for (``None`` for the ops agents).
    customer_id: str | None = None
    #: The ETA model of this run, when the caller has one at hand (else the toolbox's).
    eta: EtaPredictor | InProcessEta | None = None

    def t(self, en: str, vi: str) -> str:
        return vi if self.lang == "vi" else en


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what the model sees (name, description, JSON-Schema) and how it runs."""

    name: str
    description: str
    args: type[_Args]
    run: Callable[[Any, ToolContext], ToolOutcome]
    read_only: bool = True
    #: The region of the data a call reads ("" for cross-region aggregates).
    region: Callable[[Any, ToolContext], str] = field(default=lambda args, ctx: "")
    #: For customer data: the customer the arguments point at (``None`` when nothing is found).
    owner: Callable[[Any, ToolContext], str | None] | None = None
    #: What to search the knowledge base for to cite the policy or runbook behind the tool's answer.
    policy: Callable[[Any, ToolContext], str] | None = None

    def openai_schema(self) -> dict[str, Any]:
        """The ``tools`` entry of an OpenAI chat request."""
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        for name, prop in list(schema.get("properties", {}).items()):
            prop.pop("title", None)
            # ``X | None`` is "optional" to a model: leave it out of ``required``, show only X.
            options = prop.get("anyOf")
            if options is not None:
                kept = [o for o in options if o.get("type") != "null"]
                if len(kept) == 1:
                    prop.pop("anyOf")
                    prop.update(kept[0])
            if prop.get("default") is None:
                prop.pop("default", None)
            schema["properties"][name] = prop
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }

    def parse(self, arguments: dict[str, Any]) -> Any:
        """Validated arguments; :class:`ValueError` with the problems otherwise."""
        try:
            return self.args.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(problems) from None


# --- formatting ---------------------------------------------------------------------------------


def _day(ts_us: Any, region: str) -> str:
    if not isinstance(ts_us, int):
        return "?"
    tz = REGIONS[region].tz if region in REGIONS else UTC
    return datetime.fromtimestamp(ts_us / 1e6, tz).date().isoformat()


def _epoch_day(days: Any) -> str:
    return (date(1970, 1, 1) + timedelta(days=int(days))).isoformat() if isinstance(days, int) else "?"


def _money(amount: Any, currency: Any) -> str:
    return f"{amount} {currency}"


_STATUS_VI = {
    "placed": "đã đặt, chờ thanh toán",
    "paid": "đã thanh toán, đang chuẩn bị giao",
    "shipped": "đang giao",
    "delivered": "đã giao",
    "cancelled": "đã hủy",
    "partially_refunded": "đã hoàn tiền một phần",
}
_STATUS_EN = {
    "placed": "placed, waiting for payment",
    "paid": "paid and being prepared for shipping",
    "shipped": "shipped, on its way",
    "delivered": "delivered",
    "cancelled": "cancelled",
    "partially_refunded": "delivered and partially refunded",
}


def _status(ctx: ToolContext, status: str) -> str:
    text = (_STATUS_VI if ctx.lang == "vi" else _STATUS_EN).get(status, status)
    return f"{status} ({text})" if text != status else status


def _orders_or_unavailable(ctx: ToolContext) -> OrderFacts | ToolOutcome:
    if ctx.box.orders is None:
        return ToolOutcome.unavailable(
            ctx.t(
                "Order data is not available: no event log with the shop's order topics is configured here.",
                "Dữ liệu đơn hàng chưa sẵn sàng: chưa cấu hình nguồn dữ liệu đơn hàng.",
            )
        )
    return ctx.box.orders


def _not_found(ctx: ToolContext, order_id: str) -> ToolOutcome:
    # The same words whether the order does not exist or belongs to someone else: an answer must
    # not tell a customer that another customer's order id exists.
    return ToolOutcome(
        ToolStatus.NOT_FOUND,
        ctx.t(
            f"There is no order {order_id} among your orders.",
            f"Không tìm thấy đơn hàng {order_id} trong các đơn hàng của bạn.",
        ),
    )


def _order_owner(args: Any, ctx: ToolContext) -> str | None:
    orders = ctx.box.orders
    if orders is None:
        return None
    row = orders.order(args.order_id)
    return None if row is None else str(row.get("customer_id"))


def _order_region(args: Any, ctx: ToolContext) -> str:
    return region_of(args.order_id) or ""


_COUNTRY_VI = {"vn": "Việt Nam", "th": "Thái Lan"}


def country_of(code: str, lang: str = "en") -> str:
    """The name of a region's country (in Vietnamese for ``lang="vi"``)."""
    if lang == "vi" and code in _COUNTRY_VI:
        return _COUNTRY_VI[code]
    return REGIONS[code].name if code in REGIONS else code


def _delivery_policy(args: Any, ctx: ToolContext) -> str:
    country = country_of(args.order_id[:2], ctx.lang)
    return ctx.t(
        f"delivery time promise shipping {country} late delivery",
        f"thời gian giao hàng cam kết vận chuyển {country} giao trễ",
    )


def _refund_policy(args: Any, ctx: ToolContext) -> str:
    country = country_of(args.order_id[:2], ctx.lang)
    return ctx.t(
        f"return window days after delivery refund {country}",
        f"thời hạn trả hàng hoàn tiền sau khi giao {country}",
    )


def _runbook(topic: str) -> Callable[[Any, ToolContext], str]:
    def query(args: Any, ctx: ToolContext) -> str:
        detail = getattr(args, "exception_class", None) or ""
        return f"runbook {topic} {detail}".strip()

    return query


# --- support tools ------------------------------------------------------------------------------


def order_status(args: OrderArgs, ctx: ToolContext) -> ToolOutcome:
    orders = _orders_or_unavailable(ctx)
    if isinstance(orders, ToolOutcome):
        return orders
    order = orders.order(args.order_id)
    if order is None:
        return _not_found(ctx, args.order_id)
    region = args.order_id[:2]
    lines = orders.lines_of(args.order_id)
    payments = orders.payments_of(args.order_id)
    shipments = orders.shipments_of(args.order_id)
    items = ", ".join(f"{line['sku']} x{line['quantity']}" for line in lines) or "?"
    parts = [
        ctx.t(
            f"Order {order['order_id']} was placed on {_day(order['created_at'], region)} and its status is "
            f"{_status(ctx, order['status'])}.",
            f"Đơn hàng {order['order_id']} đặt ngày {_day(order['created_at'], region)}, trạng thái: "
            f"{_status(ctx, order['status'])}.",
        ),
        ctx.t(
            f"Total {_money(order['total'], order['currency'])} for {order.get('item_count') or len(lines)} "
            f"item(s): {items}.",
            f"Tổng tiền {_money(order['total'], order['currency'])} cho "
            f"{order.get('item_count') or len(lines)} "
            f"sản phẩm: {items}.",
        ),
    ]
    if payments:
        pay = payments[-1]
        parts.append(
            ctx.t(
                f"Payment {pay['payment_id']} by {pay['provider']} is {pay['status']}.",
                f"Thanh toán {pay['payment_id']} qua {pay['provider']}: {pay['status']}.",
            )
        )
    shipment_data = []
    for shipment in shipments:
        tracking = orders.tracking_of(shipment["shipment_id"])
        last = tracking[-1] if tracking else None
        where = (
            ctx.t(
                f", last scan at {last['location']} on {_day(last['occurred_at'], region)}",
                f", cập nhật gần nhất tại {last['location']} ngày {_day(last['occurred_at'], region)}",
            )
            if last
            else ""
        )
        parts.append(
            ctx.t(
                f"Shipment {shipment['shipment_id']} with {shipment['carrier']} is "
                f"{shipment['status']}{where}; "
                f"promised delivery by {_epoch_day(shipment['promised_date'])}.",
                f"Lô hàng {shipment['shipment_id']} của {shipment['carrier']}: {shipment['status']}{where}; "
                f"hẹn giao trước ngày {_epoch_day(shipment['promised_date'])}.",
            )
        )
        shipment_data.append(
            {
                "shipment_id": shipment["shipment_id"],
                "carrier": shipment["carrier"],
                "status": shipment["status"],
                "promised_date": _epoch_day(shipment["promised_date"]),
            }
        )
    if not shipments and order["status"] in ("placed", "paid"):
        parts.append(ctx.t("It has not shipped yet.", "Đơn hàng chưa được gửi đi."))
    return ToolOutcome.ok(
        " ".join(parts),
        order_id=order["order_id"],
        status=order["status"],
        total=str(order["total"]),
        currency=order["currency"],
        placed_on=_day(order["created_at"], region),
        items=[{"sku": line["sku"], "quantity": line["quantity"]} for line in lines],
        payment_status=payments[-1]["status"] if payments else None,
        shipments=shipment_data,
    )


def purchase_history(args: HistoryArgs, ctx: ToolContext) -> ToolOutcome:
    orders = _orders_or_unavailable(ctx)
    if isinstance(orders, ToolOutcome):
        return orders
    customer = args.customer_id or ctx.customer_id
    if customer is None:
        return ToolOutcome(
            ToolStatus.BLOCKED, "No customer is given: the support agent acts for one customer."
        )
    found = orders.orders_of(customer, args.limit)
    if not found:
        return ToolOutcome(
            ToolStatus.NOT_FOUND, ctx.t("You have no orders yet.", "Bạn chưa có đơn hàng nào.")
        )
    region = customer[:2]
    listed = "; ".join(
        f"{o['order_id']} ({_day(o['created_at'], region)}, {o['status']}, "
        f"{_money(o['total'], o['currency'])})"
        for o in found
    )
    return ToolOutcome.ok(
        ctx.t(
            f"Your {len(found)} most recent order(s): {listed}.",
            f"{len(found)} đơn hàng gần nhất của bạn: {listed}.",
        ),
        orders=[
            {
                "order_id": o["order_id"],
                "status": o["status"],
                "total": str(o["total"]),
                "currency": o["currency"],
            }
            for o in found
        ],
    )


def _history_owner(args: HistoryArgs, ctx: ToolContext) -> str | None:
    return args.customer_id or ctx.customer_id


def _history_region(args: HistoryArgs, ctx: ToolContext) -> str:
    customer = args.customer_id or ctx.customer_id
    return (region_of(customer) or "") if customer else ""


def order_delivery_date(args: OrderArgs, ctx: ToolContext) -> ToolOutcome:
    orders = _orders_or_unavailable(ctx)
    if isinstance(orders, ToolOutcome):
        return orders
    order = orders.order(args.order_id)
    if order is None:
        return _not_found(ctx, args.order_id)
    region = args.order_id[:2]
    shipments = orders.shipments_of(args.order_id)
    if not shipments:
        if order["status"] == "cancelled":
            return ToolOutcome.ok(
                ctx.t(
                    f"Order {args.order_id} was cancelled; nothing will be shipped.",
                    f"Đơn hàng {args.order_id} đã bị hủy; sẽ không có giao hàng.",
                ),
                order_id=args.order_id,
                status="cancelled",
            )
        return ToolOutcome.ok(
            ctx.t(
                f"Order {args.order_id} ({order['status']}) has not shipped yet, so there is no delivery "
                "estimate; it gets one when the warehouse hands it to the carrier.",
                f"Đơn hàng {args.order_id} ({order['status']}) chưa được gửi đi nên chưa có ngày giao "
                "dự kiến.",
            ),
            order_id=args.order_id,
            status=order["status"],
        )
    shipment = shipments[-1]
    tracking = orders.tracking_of(shipment["shipment_id"])
    promised = _epoch_day(shipment["promised_date"])
    data: dict[str, Any] = {
        "order_id": args.order_id,
        "shipment_id": shipment["shipment_id"],
        "carrier": shipment["carrier"],
        "status": shipment["status"],
        "promised_date": promised,
        "tracking": [
            {"status": e["status"], "location": e["location"], "at": _day(e["occurred_at"], region)}
            for e in tracking
        ],
    }
    if shipment["status"] == "delivered":
        delivered = _day(shipment.get("delivered_at"), region)
        data["delivered_on"] = delivered
        return ToolOutcome.ok(
            ctx.t(
                f"Shipment {shipment['shipment_id']} of order {args.order_id} was delivered by "
                f"{shipment['carrier']} on {delivered} (promised by {promised}).",
                f"Lô hàng {shipment['shipment_id']} của đơn {args.order_id} đã được "
                f"{shipment['carrier']} giao "
                f"ngày {delivered} (hẹn trước {promised}).",
            ),
            **data,
        )
    message = ctx.t(
        f"Shipment {shipment['shipment_id']} of order {args.order_id} is {shipment['status']} with "
        f"{shipment['carrier']}; the carrier promised delivery by {promised}.",
        f"Lô hàng {shipment['shipment_id']} của đơn {args.order_id} đang ở trạng thái {shipment['status']} "
        f"với {shipment['carrier']}; hãng vận chuyển hẹn giao trước ngày {promised}.",
    )
    predictor = ctx.eta or ctx.box.eta
    if predictor is None:
        notice = ctx.t(
            "The ETA prediction service is not configured, so there is no model estimate; the date above is "
            "the carrier's promise.",
            "Dịch vụ dự đoán thời gian giao hàng chưa được cấu hình; ngày trên là ngày hãng vận chuyển hẹn.",
        )
        return ToolOutcome(ToolStatus.OK, f"{message} {notice}", {**data, "eta": None, "notice": notice})
    try:
        predicted = predictor.predict(shipment, order)
    except (ConnectionError, ValueError) as exc:
        notice = ctx.t(
            f"The ETA prediction service did not answer ({exc}); the date above is the carrier's promise.",
            "Dịch vụ dự đoán thời gian giao hàng không phản hồi; ngày trên là ngày hãng vận chuyển hẹn.",
        )
        return ToolOutcome(ToolStatus.OK, f"{message} {notice}", {**data, "eta": None, "notice": notice})
    p50 = str(predicted.get("p50_at") or "")[:10]
    p90 = str(predicted.get("p90_at") or "")[:10]
    if p50:
        estimate = ctx.t(
            f"The ETA model predicts delivery on {p50} (by {p90} at the latest, 9 times in 10).",
            f"Mô hình dự đoán giao ngày {p50} (chậm nhất {p90}, 9 trên 10 lần).",
        )
    else:
        estimate = ctx.t(
            f"The ETA model predicts {predicted.get('p50_hours', 0):.0f} hours from shipping "
            f"({predicted.get('p90_hours', 0):.0f} at the latest, 9 times in 10).",
            f"Mô hình dự đoán {predicted.get('p50_hours', 0):.0f} giờ kể từ khi gửi hàng.",
        )
    return ToolOutcome.ok(f"{message} {estimate}", **data, eta=predicted)


def refund_eligibility(args: OrderArgs, ctx: ToolContext) -> ToolOutcome:
    orders = _orders_or_unavailable(ctx)
    if isinstance(orders, ToolOutcome):
        return orders
    order = orders.order(args.order_id)
    if order is None:
        return _not_found(ctx, args.order_id)
    region = args.order_id[:2]
    window = ctx.box.settings.refund_window_days.get(region, 7)
    payments = orders.payments_of(args.order_id)
    shipments = orders.shipments_of(args.order_id)
    as_of = datetime.fromtimestamp(orders.as_of_us() / 1e6, UTC) if orders.as_of_us() else datetime.now(UTC)
    facts: dict[str, Any] = {
        "order_id": args.order_id,
        "status": order["status"],
        "total": str(order["total"]),
        "currency": order["currency"],
        "refund_window_days": window,
        "as_of": as_of.date().isoformat(),
    }
    refunded = sum(float(p.get("refunded_amount") or 0) for p in payments)
    facts["refunded_so_far"] = refunded
    charged_back = any(p.get("status") == "charged_back" for p in payments)
    status = order["status"]
    if charged_back:
        eligible, reason = (
            False,
            ctx.t(
                "a chargeback was filed with the card issuer for this payment, so the money is returned "
                "through the chargeback, not a refund",
                "ngân hàng đã ghi nhận khiếu nại bồi hoàn (chargeback) cho thanh toán này, nên tiền "
                "được hoàn "
                "qua chargeback chứ không qua hoàn tiền",
            ),
        )
    elif status == "cancelled":
        eligible, reason = (
            False,
            ctx.t(
                "the order was cancelled; a cancelled paid order is refunded in full automatically",
                "đơn hàng đã bị hủy; đơn đã thanh toán bị hủy được hoàn tiền toàn bộ tự động",
            ),
        )
    elif status == "placed":
        eligible, reason = (
            False,
            ctx.t("the order is not paid yet, so there is nothing to refund", "đơn hàng chưa thanh toán"),
        )
    elif status in ("paid", "shipped"):
        eligible, reason = (
            True,
            ctx.t(
                "the order has not been delivered yet: it can be cancelled before it ships, or returned "
                "within "
                f"{window} days of delivery",
                f"đơn hàng chưa được giao: có thể hủy trước khi gửi đi, hoặc trả hàng trong {window} "
                "ngày sau "
                "khi nhận",
            ),
        )
    else:  # delivered, partially_refunded
        delivered_at = max((s.get("delivered_at") or 0 for s in shipments), default=0)
        if not delivered_at:
            delivered_at = order.get("updated_at") or 0
        delivered_day = datetime.fromtimestamp(delivered_at / 1e6, UTC).date()
        days = (as_of.date() - delivered_day).days
        facts["delivered_on"] = _day(delivered_at, region)
        facts["days_since_delivery"] = days
        if days <= window:
            eligible, reason = (
                True,
                ctx.t(
                    f"it was delivered on {facts['delivered_on']}, {days} day(s) ago, within the "
                    f"{window}-day "
                    "return window",
                    f"đơn được giao ngày {facts['delivered_on']}, cách đây {days} ngày, trong thời hạn "
                    f"{window} ngày",
                ),
            )
        else:
            eligible, reason = (
                False,
                ctx.t(
                    f"it was delivered on {facts['delivered_on']}, {days} days ago, past the {window}-day "
                    "return window",
                    f"đơn được giao ngày {facts['delivered_on']}, cách đây {days} ngày, đã quá thời hạn "
                    f"{window} ngày",
                ),
            )
        if status == "partially_refunded":
            reason += ctx.t(
                f"; {refunded:g} {order['currency']} was already refunded",
                f"; đã hoàn {refunded:g} {order['currency']}",
            )
    facts["eligible"] = eligible
    verdict = (
        ctx.t("is eligible for a refund", "đủ điều kiện hoàn tiền")
        if eligible
        else ctx.t("is not eligible for a refund", "không đủ điều kiện hoàn tiền")
    )
    return ToolOutcome.ok(
        ctx.t(
            f"Order {args.order_id} ({status}, {_money(order['total'], order['currency'])}) {verdict}: "
            f"{reason}.",
            f"Đơn hàng {args.order_id} ({status}, {_money(order['total'], order['currency'])}) {verdict}: "
            f"{reason}.",
        ),
        **facts,
    )


def stock_availability(args: SkuArgs, ctx: ToolContext) -> ToolOutcome:
    inventory = ctx.box.inventory
    if inventory is None:
        return ToolOutcome.unavailable(
            ctx.t(
                "Stock levels are not available: the reservation service is not configured here.",
                "Chưa có dữ liệu tồn kho: dịch vụ giữ hàng chưa được cấu hình.",
            )
        )
    try:
        levels = inventory.stock(args.sku)
    except ShopopsError as exc:
        return ToolOutcome(ToolStatus.ERROR, exc.message)
    if not levels:
        return ToolOutcome(
            ToolStatus.NOT_FOUND,
            ctx.t(
                f"No warehouse holds stock of {args.sku} in the reservation system.",
                f"Không kho nào có hàng {args.sku} trong hệ thống giữ hàng.",
            ),
        )
    available = sum(level.available for level in levels)
    per = ", ".join(f"{level.key.warehouse}: {level.available}" for level in levels)
    return ToolOutcome.ok(
        ctx.t(
            f"{args.sku}: {available} unit(s) available to order ({per}).",
            f"{args.sku}: còn {available} sản phẩm có thể đặt ({per}).",
        ),
        sku=args.sku,
        available=available,
        warehouses=[level.to_dict() for level in levels],
    )


def _sku_region(args: SkuArgs, ctx: ToolContext) -> str:
    return region_of(args.sku) or ""


# --- ops tools ----------------------------------------------------------------------------------


def reconciliation_exceptions(args: ReconArgs, ctx: ToolContext) -> ToolOutcome:
    if ctx.box.reconciliation is None:
        return ToolOutcome.unavailable(
            "Reconciliation results are not available: the service is not configured."
        )
    from shopops.reconciliation.model import CLASS_DESCRIPTIONS, ExceptionClass

    service = ctx.box.reconciliation()
    counts = [
        (region, cls, n)
        for region, cls, n, _ in service.store.open_by_class()
        if (args.region is None or region == args.region)
        and (args.exception_class is None or cls == args.exception_class)
    ]
    scope = " ".join(x for x in (args.region or "all regions", args.exception_class or "") if x)
    if not counts:
        return ToolOutcome(
            ToolStatus.NOT_FOUND,
            f"No open reconciliation exceptions are stored for {scope}. If none was ever run: "
            "`shopops reconcile --from ... --to ...`.",
        )
    by_class: Counter[str] = Counter()
    for _, cls, n in counts:
        by_class[cls] += n
    table = service.exceptions(
        regions=[args.region] if args.region else None,
        classes=[args.exception_class] if args.exception_class else None,
        limit=3,
    )
    examples = table.select(["exception_id", "region", "class", "order_id", "explanation"]).to_pylist()
    described = "; ".join(
        f"{cls}: {n} ({CLASS_DESCRIPTIONS.get(ExceptionClass(cls), cls)})"
        for cls, n in by_class.most_common()
    )
    example_text = " ".join(f"Example {e['exception_id']}: {e['explanation']}" for e in examples)
    return ToolOutcome.ok(
        f"Open reconciliation exceptions for {scope}: {sum(by_class.values())} in total — {described}. "
        f"{example_text}",
        by_class=dict(by_class),
        by_region={r: sum(n for rr, _, n in counts if rr == r) for r in sorted({r for r, _, _ in counts})},
        examples=examples,
    )


def _recon_region(args: ReconArgs, ctx: ToolContext) -> str:
    return args.region or ""


def _read_tail(event_log: EventLog, topic: str, per_partition: int) -> list[Any]:
    if topic not in {t.name for t in event_log.list_topics()}:
        return []
    out = []
    for partition, end in sorted(event_log.end_offsets(topic).items()):
        start = max(0, end - per_partition)
        offset = start
        while offset < end:
            chunk = event_log.read(topic, partition, offset, min(1000, end - offset))
            if not chunk:
                break
            out.extend(chunk)
            offset = chunk[-1].offset + 1
    return out


def schema_changes(args: DriftArgs, ctx: ToolContext) -> ToolOutcome:
    if ctx.box.event_log is None:
        return ToolOutcome.unavailable("Schema drift events are not available: no event log is configured.")
    subject = args.subject
    if subject and not subject.endswith("-value"):
        subject = f"{subject}-value"
    changes = []
    for record in _read_tail(ctx.box.event_log, ctx.box.schema_changes_topic, 500):
        try:
            body = orjson.loads(record.value or b"{}")
        except orjson.JSONDecodeError:
            continue
        if subject and body.get("subject") != subject:
            continue
        changes.append(body)
    quarantined: Counter[tuple[str, str]] = Counter()
    for record in _read_tail(ctx.box.event_log, ctx.box.quarantine_topic, 5000):
        headers = dict(record.headers)
        subj = headers.get("shopops.quarantine.subject", b"").decode()
        if subject and subj != subject:
            continue
        quarantined[(subj, headers.get("shopops.quarantine.kind", b"").decode())] += 1
    if not changes and not quarantined:
        return ToolOutcome(
            ToolStatus.NOT_FOUND,
            f"No schema changes or quarantined records{' for ' + subject if subject else ''} on "
            f"{ctx.box.schema_changes_topic} / {ctx.box.quarantine_topic}.",
        )
    refused = [c for c in changes if c.get("event") == "SchemaChangeQuarantined"]
    registered = [
        c for c in changes if c.get("event") == "SchemaVersionRegistered" and (c.get("version") or 0) > 1
    ]
    lines = []
    for change in refused[-5:]:
        reasons = [r for r in change.get("reasons", []) if isinstance(r, str)][:2]
        lines.append(
            f"incompatible change on {change.get('subject')} (topic {change.get('topic')}) quarantined: "
            + ("; ".join(reasons) or "see `shopops schemas check`")
        )
    for change in registered[-5:]:
        lines.append(f"compatible version {change.get('version')} registered for {change.get('subject')}")
    counts = ", ".join(f"{subj or '?'} ({kind}): {n}" for (subj, kind), n in quarantined.most_common(5))
    message = (
        f"Schema drift: {len(refused)} incompatible change(s) quarantined, {len(registered)} compatible new "
        f"version(s). " + " | ".join(lines)
    )
    if counts:
        message += f" Records in quarantine by subject: {counts}."
    return ToolOutcome.ok(
        message,
        incompatible=[
            {k: c.get(k) for k in ("subject", "topic", "version", "reasons")} for c in refused[-5:]
        ],
        compatible=[{k: c.get(k) for k in ("subject", "version")} for c in registered[-5:]],
        quarantined={f"{s}|{k}": n for (s, k), n in quarantined.items()},
    )


def _drift_region(args: DriftArgs, ctx: ToolContext) -> str:
    return args.subject[:2] if args.subject else ""


def quality_results(args: DatasetArgs, ctx: ToolContext) -> ToolOutcome:
    if ctx.box.quality is None:
        return ToolOutcome.unavailable(
            "Data-quality results are not available: the data-contract checks are not configured in this "
            "process (see `shopops contracts results`)."
        )
    try:
        service = ctx.box.quality()
        if args.dataset:
            run = service.dataset_results(args.dataset)
            failed = [c for c in run.get("checks", []) if c.get("outcome") not in ("passed", "pass", "ok")]
            detail = "; ".join(
                f"{c.get('check')}: {c.get('rows_failed', 0)} row(s) failed"
                + (f" ({c.get('message')})" if c.get("message") else "")
                for c in failed[:6]
            )
            return ToolOutcome.ok(
                f"Data quality of {args.dataset}: the latest {run.get('mode', '')} run {run.get('run_id')} "
                f"{run.get('outcome')}, {run.get('checks_failed', len(failed))} of "
                f"{run.get('checks_total', '?')} "
                f"check(s) failed on {run.get('rows_failed', 0)} of {run.get('rows_checked', 0)} "
                f"row(s). {detail}",
                run={k: v for k, v in run.items() if k != "checks"},
                failed_checks=failed[:20],
            )
        runs = service.latest(None)
    except ShopopsError as exc:
        return ToolOutcome(ToolStatus.NOT_FOUND, f"{exc.message} ({exc.hint})" if exc.hint else exc.message)
    if not runs:
        return ToolOutcome(
            ToolStatus.NOT_FOUND, "No data-quality results are stored yet (`shopops contracts check`)."
        )
    failing = [r for r in runs if r.get("checks_failed")]
    summary = "; ".join(
        f"{r.get('dataset')}: {r.get('checks_failed')} check(s) failed on {r.get('rows_failed', 0)} row(s)"
        for r in failing[:8]
    )
    return ToolOutcome.ok(
        f"Data quality: {len(runs)} dataset(s) checked, {len(failing)} with failing checks. {summary}",
        runs=runs[:20],
    )


def platform_metrics(args: MetricArgs, ctx: ToolContext) -> ToolOutcome:
    from prometheus_client import REGISTRY

    prefix = args.name or "shopops_"
    samples: list[dict[str, Any]] = []
    for family in REGISTRY.collect():
        if not family.name.startswith(prefix) and prefix not in family.name:
            continue
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket")) or sample.value == 0:
                continue
            samples.append({"name": sample.name, "labels": dict(sample.labels), "value": sample.value})
    if not samples:
        return ToolOutcome(
            ToolStatus.NOT_FOUND,
            f"No non-zero metric matching {prefix!r} in this process (metrics count from the process start; "
            "ask the platform's /metrics or Prometheus for history).",
        )
    samples.sort(key=lambda s: (-float(s["value"]), s["name"]))
    top = "; ".join(
        f"{s['name']}{{{','.join(f'{k}={v}' for k, v in s['labels'].items())}}} = {s['value']:g}"
        for s in samples[:8]
    )
    return ToolOutcome.ok(f"Metrics matching {prefix!r} (this process): {top}.", samples=samples[:40])


def reservation_alerts(args: RegionArgs, ctx: ToolContext) -> ToolOutcome:
    inventory = ctx.box.inventory
    if inventory is None:
        return ToolOutcome.unavailable(
            "The reservation service is not configured here; no stock alerts to read."
        )
    report = inventory.audit()
    blocked = {
        str(k): n
        for k, n in report.blocked_attempts.items()
        if not args.region or str(k).startswith(args.region.upper())
    }
    parts = [
        f"Reservation audit: {sum(blocked.values())} oversell attempt(s) blocked"
        + (f" (most on {max(blocked, key=lambda k: blocked[k])})" if blocked else ""),
        f"{len(report.oversubscribed)} oversubscribed item(s)",
        f"{len(report.overdue_holds)} hold(s) past their TTL",
        f"{report.outbox_pending} event(s) waiting in the outbox",
    ]
    data: dict[str, Any] = {
        "blocked_attempts": blocked,
        "oversubscribed": [level.to_dict() for level in report.oversubscribed][:10],
        "overdue_holds": len(report.overdue_holds),
        "ok": report.ok,
    }
    bursts_file = ctx.box.home / "inventory-bursts.json"
    if bursts_file.is_file():
        bursts = [
            b
            for b in orjson.loads(bursts_file.read_bytes())
            if not args.region or b.get("region") == args.region
        ]
        legacy = sum(int(b.get("legacy_oversold", 0)) for b in bursts)
        ours = sum(int(b.get("shopops_oversold", 0)) for b in bursts)
        parts.append(
            f"replayed checkout bursts: the legacy checkout oversold {legacy} unit(s) in {len(bursts)} "
            "burst(s), "
            f"shopops oversold {ours}"
        )
        data["bursts"] = {"count": len(bursts), "legacy_oversold": legacy, "shopops_oversold": ours}
    return ToolOutcome.ok("; ".join(parts) + ".", **data)


def _region_arg(args: RegionArgs, ctx: ToolContext) -> str:
    return args.region or ""


def chargeback_activity(args: RegionArgs, ctx: ToolContext) -> ToolOutcome:
    orders = _orders_or_unavailable(ctx)
    if isinstance(orders, ToolOutcome):
        return orders
    rows = orders.chargebacks(args.region)
    if not rows:
        return ToolOutcome(
            ToolStatus.NOT_FOUND, f"No chargebacks recorded{' in ' + args.region if args.region else ''}."
        )
    as_of = orders.as_of_us()
    week = 7 * 86_400 * 1_000_000
    recent = [r for r in rows if (r.get("updated_at") or 0) > as_of - week]
    before = [r for r in rows if as_of - 2 * week < (r.get("updated_at") or 0) <= as_of - week]
    by_region = Counter(str(r["payment_id"])[:2] for r in recent)
    by_provider = Counter(str(r.get("provider")) for r in recent)
    examples = ", ".join(
        f"{r['payment_id']} (order {r['order_id']}, {r['amount']} {r['currency']})" for r in rows[:3]
    )
    return ToolOutcome.ok(
        f"Chargebacks in the last 7 days of data: {len(recent)} (previous 7 days: {len(before)}); by region "
        f"{dict(by_region)}; by provider {dict(by_provider)}. Latest: {examples}.",
        last_7_days=len(recent),
        previous_7_days=len(before),
        by_region=dict(by_region),
        by_provider=dict(by_provider),
    )


# --- the catalogue ------------------------------------------------------------------------------

TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "order_status",
            "Status of one of the customer's orders, given its order id: where is my order now, what "
            "state it "
            "is in, its items, total and payment. Tình trạng, đang ở đâu (tinh trang, dang o dau).",
            OrderArgs,
            order_status,
            region=_order_region,
            owner=_order_owner,
            policy=_delivery_policy,
        ),
        ToolSpec(
            "purchase_history",
            "List the customer's own recent purchases: my orders, order history, what did I buy. "
            "Lịch sử mua hàng, những đơn đã mua gần đây.",
            HistoryArgs,
            purchase_history,
            region=_history_region,
            owner=_history_owner,
        ),
        ToolSpec(
            "order_delivery_date",
            "When will an order arrive or be delivered: its expected delivery date (ETA), carrier and "
            "tracking. "
            "Khi nào nhận được đơn hàng, ngày giao dự kiến.",
            OrderArgs,
            order_delivery_date,
            region=_order_region,
            owner=_order_owner,
            policy=_delivery_policy,
        ),
        ToolSpec(
            "refund_eligibility",
            "Check whether one given order (by its order id) can be refunded or returned now: refund, "
            "return it, get my money back for this order. Đơn hàng này có được hoàn tiền, trả hàng không.",
            OrderArgs,
            refund_eligibility,
            region=_order_region,
            owner=_order_owner,
            policy=_refund_policy,
        ),
        ToolSpec(
            "stock_availability",
            "Is a product in stock: units available to order for a product SKU in each warehouse. "
            "Còn hàng không, tồn kho sản phẩm.",
            SkuArgs,
            stock_availability,
            region=_sku_region,
        ),
        ToolSpec(
            "reconciliation_exceptions",
            "Open reconciliation exceptions (breaks between orders, payments and the ledger) by region "
            "and class, "
            "with explanations: ledger breaks, missing payments, amount mismatches, late settlements, FX "
            "differences.",
            ReconArgs,
            reconciliation_exceptions,
            region=_recon_region,
            policy=_runbook("reconciliation break exceptions"),
        ),
        ToolSpec(
            "schema_changes",
            "Schema changes of the CDC streams by subject: incompatible changes the registry refused (their "
            "records quarantined) and compatible new versions.",
            DriftArgs,
            schema_changes,
            region=_drift_region,
            policy=_runbook("schema drift quarantine replay"),
        ),
        ToolSpec(
            "quality_results",
            "Data quality and data-contract check results per dataset: failed checks, failing rows and why.",
            DatasetArgs,
            quality_results,
            policy=_runbook("data quality contract check failed rows"),
        ),
        ToolSpec(
            "platform_metrics",
            "Current values of the platform's Prometheus metrics (counters and gauges) by metric name "
            "or prefix.",
            MetricArgs,
            platform_metrics,
        ),
        ToolSpec(
            "reservation_alerts",
            "Inventory reservation alerts: oversell attempts blocked, oversubscribed stock, holds past "
            "their TTL, "
            "and the replayed checkout bursts (legacy oversell against shopops).",
            RegionArgs,
            reservation_alerts,
            region=_region_arg,
            policy=_runbook("oversell alert reservations blocked attempts"),
        ),
        ToolSpec(
            "chargeback_activity",
            "Chargebacks (payment disputes charged back by card issuers) per region and provider over "
            "the last "
            "week against the week before: is there a chargeback spike.",
            RegionArgs,
            chargeback_activity,
            region=_region_arg,
            policy=_runbook("chargeback fraud spike"),
        ),
    )
}


def eta_predictor(settings: AgentsSettings, api_key: str | None = None) -> EtaPredictor | None:
    """The ETA client when ``agents.eta_url`` (or ``SHOPOPS_ETA_URL``) names one, else ``None``."""
    url = settings.eta_url or os.environ.get("SHOPOPS_ETA_URL")
    return EtaPredictor(url, api_key) if url else None
