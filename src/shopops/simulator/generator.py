"""The generation: one :class:`RegionSimulator` per region plays that region's OLTP databases.

Per region-day, random draws are vectorised with numpy (order arrival times, baskets, payment and
delivery delays, which pains strike), then one pass over the day's inventory-affecting actions in
time order decides checkouts against real stock, and one pass over the created orders schedules
their whole life (payment, ledger, shipment, refunds) into the region's :class:`Timeline`, days
ahead where needed. The encoder later turns each bucket into Debezium records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from shopops.core.money import minor_units
from shopops.domain.regions import REGIONS, Region
from shopops.simulator.model import (
    CANCEL_SHARE,
    NULL_PROVIDER_REF_SHARE,
    PROMISE_Z,
    PROVIDER_FEE_FIXED_USD,
    PROVIDER_FEE_RATE,
    REGION_PROFILES,
    ROUTE_MEDIAN_HOURS,
    TABLE_INDEX,
    USD_SETTLEMENT_SHARE,
    SimulationConfig,
)
from shopops.simulator.truth import Truth
from shopops.simulator.world import (
    STREAM_DAY,
    STREAM_WORLD,
    US_PER_DAY,
    US_PER_H,
    US_PER_S,
    FxMarket,
    Timeline,
    epoch_days,
    hexes,
    ips,
    money_formatter,
    rng_for,
)

Row = dict[str, Any]

T_CUSTOMERS = TABLE_INDEX["shop.customers"]
T_PRODUCTS = TABLE_INDEX["shop.products"]
T_ORDERS = TABLE_INDEX["shop.orders"]
T_LINES = TABLE_INDEX["shop.order_lines"]
T_PAYMENTS = TABLE_INDEX["payments.payments"]
T_LEDGER = TABLE_INDEX["finance.ledger_entries"]
T_FX = TABLE_INDEX["finance.fx_rates"]
T_WAREHOUSES = TABLE_INDEX["inventory.warehouses"]
T_STOCK = TABLE_INDEX["inventory.stock_levels"]
T_MOVEMENTS = TABLE_INDEX["inventory.movements"]
T_CHECKOUTS = TABLE_INDEX["inventory.checkouts"]
T_SHIPMENTS = TABLE_INDEX["logistics.shipments"]
T_SHIP_EVENTS = TABLE_INDEX["logistics.shipment_events"]

N_WAREHOUSES = 3
CHANNELS = ("web", "app", "marketplace")
CHANNEL_P = (0.45, 0.42, 0.13)
METHODS = ("card", "wallet", "bank_transfer")
METHOD_P = (0.6, 0.3, 0.1)
SEGMENTS = ("new", "regular", "vip")
CATEGORIES = ("electronics", "fashion", "home", "beauty", "grocery", "toys", "sports", "books")
ADJECTIVES = ("Classic", "Smart", "Eco", "Mini", "Pro", "Soft", "Urban", "Lite", "Max", "Daily")
NOUNS = ("Speaker", "Jacket", "Lamp", "Serum", "Coffee", "Puzzle", "Bottle", "Novel", "Backpack", "Kettle")
#: Relative order arrivals per local hour: a lunch and an evening peak.
# fmt: off
DIURNAL = np.array([0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.7, 1.3, 2.0, 2.6, 3.0, 3.4,
                    3.9, 3.5, 3.0, 2.8, 2.9, 3.2, 3.7, 4.4, 5.0, 4.8, 3.6, 2.0])
# fmt: on
DIURNAL_P = DIURNAL / DIURNAL.sum()
FIRST_NAMES = ("An", "Binh", "Chai", "Dara", "Ethan", "Farah", "Gita", "Hana", "Ivan", "Jin", "Kiet", "Lina")
LAST_NAMES = ("Nguyen", "Tan", "Srisuk", "Lim", "Wong", "Tran", "Chen", "Santos", "Rahman", "Pham", "Ong")
#: Legacy checkout races: when more carts than units arrive within milliseconds, each extra cart
#: still succeeds with this probability (the oversell the reservation engine must prevent).
BURST_RACE_WIN = 0.2
#: First IPv4 octet of each region's customer addresses.
IP_OCTET = {"vn": 14, "sg": 42, "th": 49, "my": 60, "id": 36, "ph": 49}


@dataclass(slots=True)
class Cart:
    """A checkout attempt of one customer; it becomes an order if any of its lines is in stock."""

    t_cart: int
    t_decide: int
    t_order: int
    cust: int
    warehouse: int
    lines: list[tuple[int, int, int]]  # (product, quantity, discount percent)
    device: str
    card: str
    ip: str
    address: str
    channel: int
    fraud_p: float
    is_fraud: bool
    new_customer: bool
    new_device: bool
    night: bool
    high_value: bool
    source: str = "normal"
    ring_id: str | None = None
    burst: int = -1  # index of the ring burst this cart belongs to


@dataclass(slots=True)
class PlacedOrder:
    """An order that was created: its cart and the lines that got stock."""

    order_id: str
    cart: Cart
    lines: list[tuple[int, int, int, int, int]]  # (product, quantity, unit price, discount, line total)
    cancel: bool = False


@dataclass(slots=True)
class Ring:
    """A fraud ring: accounts sharing devices, cards, one delivery address and an IP range."""

    ring_id: str
    members: list[int]
    devices: list[str]
    cards: list[str]
    address: str
    ip_prefix: str


@dataclass(slots=True)
class RingBurst:
    """One velocity burst of a ring: its carts, and how many accounts it opened for it."""

    ring: Ring
    started_us: int
    carts: list[Cart] = field(default_factory=list)
    new_members: int = 0


@dataclass(slots=True)
class CheckoutBurst:
    """Concurrent carts for the last ``units`` of one SKU in one warehouse."""

    warehouse: int
    product: int
    units: int
    #: How many carts the legacy system lets through (more than ``units`` when it races).
    accepted: int
    t_attempt: list[int]
    t_decide: list[int]
    t_order: list[int]
    custs: list[int]
    channel: list[int]
    fraud_p: list[float]
    is_fraud: list[bool]
    new_customer: list[bool]


@dataclass(slots=True)
class LifeDraws:
    """Random draws for the lives of one region-day's orders, one list entry per order."""

    pain_u: list[float]
    auth_s: list[int]
    cap_s: list[int]
    paid_s: list[int]
    method: list[int]
    settle_h: list[int]
    late_h: list[int]
    late_settle_h: list[int]
    usd_settle: list[bool]
    fx_u: list[float]
    fx_eps: list[float]
    round_u: list[float]
    round_sign: list[int]
    ledger_u: list[float]
    ledger_pct: list[float]
    refund_u: list[float]
    refund_pct: list[float]
    refund_after: list[int]
    chargeback_after: list[int]
    cancel_after: list[int]
    ship_after: list[int]
    carrier: list[int]
    z: list[float]
    disrupt_u: list[float]
    disrupt_factor: list[float]
    f_pick: list[float]
    f_transit: list[float]
    f_ofd: list[float]
    other: list[int]
    refs: list[int]
    null_ref_u: list[float]

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int, carriers: int, others: int) -> LifeDraws:
        """Draw everything at once (vectorised), in a fixed order so that a seed fixes the result."""
        sign = np.array([-1.0, 1.0])
        return cls(
            pain_u=rng.random(n).tolist(),
            auth_s=rng.integers(1 * US_PER_S, 20 * US_PER_S, n).tolist(),
            cap_s=rng.integers(2 * US_PER_S, 60 * US_PER_S, n).tolist(),
            paid_s=rng.integers(300_000, 3 * US_PER_S, n).tolist(),
            method=rng.choice(3, n, p=METHOD_P).tolist(),
            settle_h=rng.integers(2 * US_PER_H, 30 * US_PER_H, n).tolist(),
            late_h=rng.integers(24 * US_PER_H, 120 * US_PER_H, n).tolist(),
            late_settle_h=rng.integers(2 * US_PER_H, 20 * US_PER_H, n).tolist(),
            usd_settle=(rng.random(n) < USD_SETTLEMENT_SHARE).tolist(),
            fx_u=rng.random(n).tolist(),
            fx_eps=(rng.uniform(0.003, 0.02, n) * rng.choice(sign, n)).tolist(),
            round_u=rng.random(n).tolist(),
            round_sign=rng.choice(np.array([-1, 1]), n).tolist(),
            ledger_u=rng.random(n).tolist(),
            ledger_pct=(rng.uniform(0.01, 0.2, n) * rng.choice(sign, n)).tolist(),
            refund_u=rng.random(n).tolist(),
            refund_pct=rng.uniform(0.1, 0.6, n).tolist(),
            refund_after=rng.integers(1 * US_PER_DAY, 7 * US_PER_DAY, n).tolist(),
            chargeback_after=rng.integers(10 * US_PER_DAY, 40 * US_PER_DAY, n).tolist(),
            cancel_after=rng.integers(18 * 60 * US_PER_S, 27 * 60 * US_PER_S, n).tolist(),
            ship_after=rng.integers(US_PER_H // 2, 6 * US_PER_H, n).tolist(),
            carrier=rng.integers(0, carriers, n).tolist(),
            z=rng.standard_normal(n).tolist(),
            disrupt_u=rng.random(n).tolist(),
            disrupt_factor=rng.uniform(1.8, 3.0, n).tolist(),
            f_pick=rng.uniform(0.05, 0.12, n).tolist(),
            f_transit=rng.uniform(0.15, 0.3, n).tolist(),
            f_ofd=rng.uniform(0.8, 0.93, n).tolist(),
            other=rng.integers(0, others, n).tolist(),
            refs=rng.integers(0, 2**40, n).tolist(),
            null_ref_u=rng.random(n).tolist(),
        )


class RegionSimulator:
    """Plays one region's databases (shop, payments, finance, inventory, logistics)."""

    def __init__(
        self,
        config: SimulationConfig,
        region: Region,
        fx: FxMarket,
        timelines: dict[str, Timeline],
        change_us: dict[str, dict[str, int | None]],
        truth: Truth,
    ) -> None:
        self.cfg = config
        self.region = region
        self.code = region.code
        self.profile = REGION_PROFILES[region.code]
        self.cur = region.currency
        self.fmt = money_formatter(self.cur)
        self.fmt_usd = money_formatter("USD")
        self.fx = fx
        self.timelines = timelines
        self.tl = timelines[region.code]
        self.truth = truth
        self.rates = config.effective_rates()
        self.others = [c for c in config.regions if c != region.code]
        self.topic = {name: f"{region.code}.{name}" for name in TABLE_INDEX}
        #: When ``shop.orders`` gains ``channel`` here, and when each region's payments may lack a
        #: provider reference (``None``: schema changes are off).
        self.channel_from = change_us[region.code]["shop.orders"]
        self.optional_ref_from = {code: change_us[code]["payments.payments"] for code in config.regions}
        self.n_order = 0
        self.n_payment = 0
        self.n_journal = 0
        self.n_movement = 0
        self.n_checkout = 0
        self.n_cart = 0
        self.n_shipment = 0
        self.n_ring = 0
        self.n_burst = 0
        self.n_orphan = 0
        self.n_po = 0
        self.stock_last_us: dict[tuple[int, int], int] = {}
        self._build_world()

    # --- the world before the window ----------------------------------------------------------

    def _build_world(self) -> None:
        cfg, prof, code = self.cfg, self.profile, self.code
        rng = rng_for(cfg.seed, code, STREAM_WORLD)
        t_start = self.tl.start_us
        usd_rate = float(self.fx.rate(self.cur, 0))
        scale = 10 ** minor_units(self.cur)

        # warehouses: one per the first N cities
        self.wh_ids = [f"{code}-wh-{i + 1:02d}" for i in range(N_WAREHOUSES)]
        self.wh_rows: list[Row] = []
        capacity = rng.integers(20, 120, N_WAREHOUSES).tolist()
        for i, wid in enumerate(self.wh_ids):
            self.wh_rows.append(
                {
                    "warehouse_id": wid,
                    "name": f"{prof.cities[i]} Fulfilment Centre",
                    "city": prof.cities[i],
                    "timezone": self.region.timezone,
                    "capacity": int(capacity[i]) * 1000,
                    "active": True,
                    "created_at": t_start - int(rng.integers(400, 2000)) * US_PER_DAY,
                }
            )

        # products: prices from a USD lognormal, popularity Zipf-like
        n_products = min(max(cfg.orders_per_day // 5, 30), 300)
        self.n_products = n_products
        usd = np.clip(rng.lognormal(math.log(18.0), 0.8, n_products), 1.0, 900.0)
        step = prof.price_step
        self.price = (np.maximum(np.round(usd * usd_rate * scale / step), 1) * step).astype(np.int64)
        self.weight = np.round(np.clip(rng.lognormal(math.log(0.6), 0.8, n_products), 0.05, 40.0), 3)
        ranks = rng.permutation(n_products)
        pop = 1.0 / (ranks + 5.0)
        self.popularity = pop / pop.sum()
        self.pop_cum = np.cumsum(self.popularity)
        self.pop_cum[-1] = 1.0
        self.expensive = np.argsort(-self.price)[: max(3, n_products // 5)]
        self.prod_ids = [f"{code}-p-{i + 1:05d}" for i in range(n_products)]
        self.skus = [f"{code.upper()}-SKU-{i + 1:05d}" for i in range(n_products)]
        cats = rng.integers(0, len(CATEGORIES), n_products).tolist()
        adj = rng.integers(0, len(ADJECTIVES), n_products).tolist()
        noun = rng.integers(0, len(NOUNS), n_products).tolist()
        created = (t_start - rng.integers(30, 900, n_products) * US_PER_DAY).tolist()
        self.prod_rows: list[Row] = []
        for i in range(n_products):
            self.prod_rows.append(
                {
                    "product_id": self.prod_ids[i],
                    "sku": self.skus[i],
                    "name": f"{ADJECTIVES[adj[i]]} {NOUNS[noun[i]]} {i + 1}",
                    "category": CATEGORIES[cats[i]],
                    "price": self.fmt(int(self.price[i])),
                    "currency": self.cur,
                    "weight_kg": float(self.weight[i]),
                    "active": True,
                    "created_at": created[i],
                    "updated_at": created[i],
                }
            )
        self.median_price = int(np.median(self.price))

        # stock: enough for about a week of expected demand, reordered below two days' worth
        demand = cfg.orders_per_day * 1.8 * 1.25 * self.popularity / N_WAREHOUSES
        self.target = np.ceil(demand * 6 + 5).astype(np.int64)
        self.reorder = np.ceil(demand * 2 + 2).astype(np.int64)
        self.on_hand = np.tile(self.target, (N_WAREHOUSES, 1))
        self.stock_rows: dict[tuple[int, int], Row] = {}
        for w in range(N_WAREHOUSES):
            for p in range(n_products):
                self.stock_rows[(w, p)] = {
                    "warehouse_id": self.wh_ids[w],
                    "sku": self.skus[p],
                    "product_id": self.prod_ids[p],
                    "on_hand": int(self.target[p]),
                    "reorder_point": int(self.reorder[p]),
                    "updated_at": t_start - US_PER_H,
                }

        # customers
        self.cust_ids: list[str] = []
        self.cust_rows: list[Row] = []
        self.cust_city: list[int] = []
        self.cust_device: list[str] = []
        self.cust_card: list[str] = []
        self.cust_addr: list[str] = []
        self.cust_ip: list[str] = []
        self.cust_created: list[int] = []
        self.cust_active: list[bool] = []
        self.cust_ring: list[bool] = []
        self.rings: list[Ring] = []
        # customers live three times as often in the warehouse cities as elsewhere
        weights = np.array([3.0 if i < N_WAREHOUSES else 1.0 for i in range(len(prof.cities))])
        self.city_p = weights / weights.sum()
        n_customers = min(max(cfg.orders_per_day * 3, 60), 30_000)
        since = rng.integers(1, 3 * 365, n_customers) * US_PER_DAY + rng.integers(0, US_PER_DAY, n_customers)
        self._new_customers(rng, (t_start - since).tolist(), ring=False)

    def _new_customers(self, rng: np.random.Generator, created: list[int], ring: bool) -> list[int]:
        """Create customers (their rows, not their events); returns their indices."""
        n = len(created)
        prof = self.profile
        cities = rng.choice(len(prof.cities), n, p=self.city_p).tolist()
        devices = hexes(rng, n, "dev-", 12)
        cards = hexes(rng, n, "fp-", 16)
        addrs = hexes(rng, n, "", 16)
        ip_list = ips(rng, n, IP_OCTET[self.code])
        first = rng.integers(0, len(FIRST_NAMES), n).tolist()
        last = rng.integers(0, len(LAST_NAMES), n).tolist()
        phone = rng.integers(10_000_000, 99_999_999, n).tolist()
        segment = rng.choice(3, n, p=(0.3, 0.6, 0.1)).tolist()
        opt_in = (rng.random(n) < 0.4).tolist()
        out: list[int] = []
        for i in range(n):
            idx = len(self.cust_ids)
            cid = f"{self.code}-c-{idx + 1:07d}"
            self.cust_ids.append(cid)
            self.cust_rows.append(
                {
                    "customer_id": cid,
                    "email": f"customer{idx + 1}@{self.code}.example.com",
                    "phone": f"+{phone_prefix(self.code)}{phone[i]}",
                    "full_name": f"{FIRST_NAMES[first[i]]} {LAST_NAMES[last[i]]}",
                    "city": prof.cities[cities[i]],
                    "address_hash": addrs[i],
                    "segment": SEGMENTS[segment[i]],
                    "marketing_opt_in": opt_in[i],
                    "created_at": created[i],
                    "updated_at": created[i],
                }
            )
            self.cust_city.append(cities[i])
            self.cust_device.append(devices[i])
            self.cust_card.append(cards[i])
            self.cust_addr.append(addrs[i])
            self.cust_ip.append(ip_list[i])
            self.cust_created.append(created[i])
            self.cust_active.append(True)
            self.cust_ring.append(ring)
            out.append(idx)
        return out

    def snapshot(self) -> None:
        """The connector's initial snapshot (op ``r``) of the reference tables at the window start."""
        tl = self.tl
        t = tl.start_us
        g = tl.group()
        for row in self.wh_rows:
            tl.push(t, T_WAREHOUSES, "r", {"warehouse_id": row["warehouse_id"]}, None, row, g)
        for row in self.prod_rows:
            tl.push(t, T_PRODUCTS, "r", {"product_id": row["product_id"]}, None, row, g)
        for cid, row in zip(self.cust_ids, self.cust_rows, strict=True):
            tl.push(t, T_CUSTOMERS, "r", {"customer_id": cid}, None, row, g)
        for (w, p), row in self.stock_rows.items():
            tl.push(t, T_STOCK, "r", {"warehouse_id": self.wh_ids[w], "sku": self.skus[p]}, None, row, g)

    # --- one day ------------------------------------------------------------------------------

    def generate_day(self, day: int) -> None:
        """Schedule every change the region's databases make on local ``day`` (and its consequences)."""
        rng = rng_for(self.cfg.seed, self.code, STREAM_DAY, day)
        t0 = self.tl.day_starts[day]
        self._publish_fx(day, t0)
        self._reprice(rng, t0)
        pool = np.flatnonzero(np.array(self.cust_active) & ~np.array(self.cust_ring))
        carts = self._sample_carts(rng, t0, pool)
        ring_bursts = self._ring_bursts(rng, t0)
        ring_first: list[int] = []
        for rb in ring_bursts:
            ring_first.append(len(carts))
            carts.extend(rb.carts)
        bursts = self._sample_checkout_bursts(rng, t0, pool)
        adjustments = self._sample_adjustments(rng, t0)

        # Inventory-affecting actions in decision order: receipts, adjustments, carts, bursts.
        actions: list[tuple[int, int, int]] = [(t0 + 6 * US_PER_H, 0, 0)]
        actions += [(a[0], 1, i) for i, a in enumerate(adjustments)]
        actions += [(c.t_decide, 2, i) for i, c in enumerate(carts)]
        actions += [(b.t_attempt[0], 3, i) for i, b in enumerate(bursts)]
        actions.sort()
        placed: list[PlacedOrder] = []
        cart_orders: dict[int, str] = {}
        for t, kind, i in actions:
            if kind == 0:
                self._receipts(t)
            elif kind == 1:
                self._adjust(t, *adjustments[i][1:])
            elif kind == 2:
                order = self._checkout(carts[i])
                if order is not None:
                    placed.append(order)
                    cart_orders[i] = order.order_id
            else:
                placed.extend(self._checkout_burst(bursts[i]))

        for rb, first in zip(ring_bursts, ring_first, strict=True):
            ids = [cart_orders[j] for j in range(first, first + len(rb.carts)) if j in cart_orders]
            self.truth.pain(
                "fraud_ring_burst",
                self.code,
                self.topic["shop.orders"],
                {"ring_id": rb.ring.ring_id},
                rb.started_us,
                True,
                ring_id=rb.ring.ring_id,
                members=[self.cust_ids[m] for m in rb.ring.members],
                new_members=rb.new_members,
                order_ids=ids,
                carts=len(rb.carts),
                devices=rb.ring.devices,
                cards=rb.ring.cards,
                address_hash=rb.ring.address,
            )
        self.truth.exposures["fraud_ring_burst"] += 1
        self.truth.exposures["checkout_burst"] += 1

        used = {c.cust for c in carts}
        self._customer_changes(rng, t0, pool, used)
        paid = self._lifecycles(rng, placed)
        self._orphan_payments(rng, t0, paid)

    # --- reference data changes ---------------------------------------------------------------

    def _publish_fx(self, day: int, t0: int) -> None:
        t = t0 + 5 * 60 * US_PER_S
        g = self.tl.group()
        rate_date = epoch_days(self.cfg.start) + day
        for currency in self.fx.currencies:
            key = {"rate_date": rate_date, "base": "USD", "quote": currency}
            row = {
                **key,
                "rate": str(self.fx.rate(currency, day)),
                "source": "central-fx-feed",
                "published_at": t,
            }
            self.tl.push(t, T_FX, "c", key, None, row, g)

    def _reprice(self, rng: np.random.Generator, t0: int) -> None:
        n = min(int(rng.poisson(0.02 * self.n_products)), self.n_products)
        if n == 0:
            return
        which = rng.choice(self.n_products, n, replace=False).tolist()
        factor = rng.uniform(0.85, 1.15, n).tolist()
        at = (t0 + rng.integers(100_000, 900_000, n)).tolist()
        step = self.profile.price_step
        for p, f, t in zip(which, factor, at, strict=True):
            new_price = max(round(int(self.price[p]) * f / step), 1) * step
            self.price[p] = new_price
            before = self.prod_rows[p]
            after = {**before, "price": self.fmt(new_price), "updated_at": t}
            self.prod_rows[p] = after
            self.tl.push(t, T_PRODUCTS, "u", {"product_id": self.prod_ids[p]}, before, after, self.tl.group())

    def _customer_changes(self, rng: np.random.Generator, t0: int, pool: np.ndarray, used: set[int]) -> None:
        cfg = self.cfg
        # sign-ups during the day; they shop from the next day on
        n_new = int(rng.poisson(max(0.5, 0.03 * cfg.orders_per_day)))
        if n_new:
            created = np.sort(t0 + rng.integers(0, US_PER_DAY, n_new)).tolist()
            for idx in self._new_customers(rng, created, ring=False):
                row = self.cust_rows[idx]
                self.tl.push(
                    row["created_at"],
                    T_CUSTOMERS,
                    "c",
                    {"customer_id": row["customer_id"]},
                    None,
                    row,
                    self.tl.group(),
                )
        idle = np.array([c for c in pool.tolist() if c not in used], dtype=np.int64)
        if len(idle) == 0:
            return
        n_upd = min(int(rng.poisson(0.002 * len(pool) + 0.5)), len(idle))
        n_del = min(int(rng.poisson(0.0005 * len(pool) + 0.2)), len(idle) - n_upd)
        chosen = rng.choice(idle, n_upd + n_del, replace=False).tolist()
        what = rng.integers(0, 3, n_upd).tolist()
        upd_at = (t0 + rng.integers(US_PER_H, 23 * US_PER_H, n_upd)).tolist()
        new_city = rng.integers(0, len(self.profile.cities), n_upd).tolist()
        new_addr = hexes(rng, n_upd, "", 16)
        for j, c in enumerate(chosen[:n_upd]):
            before = self.cust_rows[c]
            t = upd_at[j]
            if what[j] == 0:
                seg = SEGMENTS[min(SEGMENTS.index(before["segment"]) + 1, 2)]
                after = {**before, "segment": seg, "updated_at": t}
            elif what[j] == 1:
                after = {**before, "marketing_opt_in": not before["marketing_opt_in"], "updated_at": t}
            else:  # moved house: new city and address
                city = new_city[j]
                self.cust_city[c] = city
                self.cust_addr[c] = new_addr[j]
                after = {
                    **before,
                    "city": self.profile.cities[city],
                    "address_hash": new_addr[j],
                    "updated_at": t,
                }
            self.cust_rows[c] = after
            self.tl.push(
                t, T_CUSTOMERS, "u", {"customer_id": self.cust_ids[c]}, before, after, self.tl.group()
            )
        del_at = (t0 + rng.integers(23 * US_PER_H, US_PER_DAY - US_PER_S, n_del)).tolist()
        for j, c in enumerate(chosen[n_upd:]):
            # account closure: the row is deleted (a delete event, then a tombstone)
            self.cust_active[c] = False
            before = self.cust_rows[c]
            self.tl.push(
                del_at[j], T_CUSTOMERS, "d", {"customer_id": self.cust_ids[c]}, before, None, self.tl.group()
            )

    # --- carts and inventory ------------------------------------------------------------------

    def _fraud(
        self,
        rng: np.random.Generator,
        new_customer: np.ndarray,
        night: np.ndarray,
        high_value: np.ndarray,
        new_device: np.ndarray,
        ring: bool,
    ) -> tuple[list[float], list[bool]]:
        """The fraud probability of each order (a logistic model of its features) and a sampled label."""
        n = len(new_customer)
        logit = (
            -5.0
            + 1.2 * new_customer
            + 0.8 * night
            + 1.0 * high_value
            + 1.4 * new_device
            + rng.normal(0.0, 0.25, n)
        )
        if ring:
            logit = logit + 4.5 + rng.normal(0.0, 0.5, n)
        p = 1.0 / (1.0 + np.exp(-logit))
        label = rng.random(n) < p
        return p.tolist(), label.tolist()

    def _baskets(
        self, rng: np.random.Generator, n: int, expensive: bool
    ) -> tuple[list[list[tuple[int, int, int]]], np.ndarray]:
        """``n`` baskets of (product, quantity, discount %) and each basket's value at list price."""
        n_lines = np.clip(1 + rng.poisson(0.8, n), 1, 4)
        total = int(n_lines.sum())
        if expensive:
            prods = self.expensive[rng.integers(0, len(self.expensive), total)]
        else:
            prods = np.searchsorted(self.pop_cum, rng.random(total), side="right")
            prods = np.minimum(prods, self.n_products - 1)
        qty = rng.choice(np.array([1, 2, 3]), total, p=(0.8, 0.15, 0.05))
        disc = np.where(rng.random(total) < 0.2, rng.integers(5, 21, total), 0)
        value = self.price[prods] * qty
        ends = np.cumsum(n_lines)
        starts = ends - n_lines
        basket_value = np.add.reduceat(value, starts) if total else np.zeros(0, dtype=np.int64)
        p_l, q_l, d_l = prods.tolist(), qty.tolist(), disc.tolist()
        baskets = [
            [(p_l[j], q_l[j], d_l[j]) for j in range(s, e)]
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        ]
        return baskets, basket_value

    def _sample_carts(self, rng: np.random.Generator, t0: int, pool: np.ndarray) -> list[Cart]:
        n = int(rng.poisson(self.cfg.orders_per_day))
        if n == 0 or len(pool) == 0:
            return []
        hours = rng.choice(24, n, p=DIURNAL_P)
        t_cart = np.sort(t0 + hours * US_PER_H + rng.integers(0, US_PER_H, n))
        t_decide = t_cart + rng.integers(50_000, 800_000, n)
        t_order = t_decide + rng.integers(1 * US_PER_S, 3 * US_PER_S, n)
        cust = pool[rng.integers(0, len(pool), n)]
        baskets, value = self._baskets(rng, n, expensive=False)
        city = np.array(self.cust_city)[cust]
        local = (city < N_WAREHOUSES) & (rng.random(n) < 0.8)
        warehouse = np.where(local, np.minimum(city, N_WAREHOUSES - 1), rng.integers(0, N_WAREHOUSES, n))
        new_device = rng.random(n) < 0.05
        fresh_devices = hexes(rng, n, "dev-", 12)
        created = np.array(self.cust_created)[cust]
        new_customer = (t_cart - created) < 7 * US_PER_DAY
        night = hours < 5
        high_value = value > 4 * self.median_price
        fraud_p, label = self._fraud(rng, new_customer, night, high_value, new_device, ring=False)
        channel = rng.choice(3, n, p=CHANNEL_P).tolist()
        tc, td, to = t_cart.tolist(), t_decide.tolist(), t_order.tolist()
        cl, wl, nd = cust.tolist(), warehouse.tolist(), new_device.tolist()
        nc, ni, hv = new_customer.tolist(), night.tolist(), high_value.tolist()
        return [
            Cart(
                tc[i],
                td[i],
                to[i],
                cl[i],
                wl[i],
                baskets[i],
                fresh_devices[i] if nd[i] else self.cust_device[cl[i]],
                self.cust_card[cl[i]],
                self.cust_ip[cl[i]],
                self.cust_addr[cl[i]],
                channel[i],
                fraud_p[i],
                label[i],
                nc[i],
                nd[i],
                ni[i],
                hv[i],
            )
            for i in range(n)
        ]

    def _ring_bursts(self, rng: np.random.Generator, t0: int) -> list[RingBurst]:
        """Fraud rings: customers sharing devices, cards and an address, ordering in velocity bursts."""
        out: list[RingBurst] = []
        for _ in range(int(rng.poisson(self.rates["fraud_ring_burst"]))):
            started = t0 + int(rng.integers(10 * US_PER_H, 22 * US_PER_H))
            new_members = 0
            if self.rings and rng.random() < 0.5:
                ring = self.rings[int(rng.integers(0, len(self.rings)))]
            else:
                self.n_ring += 1
                m = int(rng.integers(3, 9))
                joined = np.sort(started - rng.integers(30 * 60 * US_PER_S, 6 * US_PER_H, m))
                joined = np.maximum(joined, t0 + US_PER_S).tolist()
                members = self._new_customers(rng, joined, ring=True)
                ring = Ring(
                    f"{self.code}-ring-{self.n_ring:04d}",
                    members,
                    hexes(rng, int(rng.integers(1, 3)), "dev-", 12),
                    hexes(rng, int(rng.integers(1, 3)), "fp-", 16),
                    hexes(rng, 1, "", 16)[0],
                    f"{IP_OCTET[self.code]}.{int(rng.integers(1, 255))}.{int(rng.integers(1, 255))}",
                )
                for c in members:  # the ring's accounts all use the same delivery address
                    before = self.cust_rows[c]
                    self.cust_addr[c] = ring.address
                    self.cust_rows[c] = {**before, "address_hash": ring.address}
                    row = self.cust_rows[c]
                    self.tl.push(
                        row["created_at"],
                        T_CUSTOMERS,
                        "c",
                        {"customer_id": row["customer_id"]},
                        None,
                        row,
                        self.tl.group(),
                    )
                self.rings.append(ring)
                new_members = m
            n = int(rng.integers(3, 13))
            t_cart = np.sort(started + rng.integers(0, 40 * 60 * US_PER_S, n))
            t_decide = t_cart + rng.integers(50_000, 400_000, n)
            t_order = t_decide + rng.integers(US_PER_S, 3 * US_PER_S, n)
            baskets, value = self._baskets(rng, n, expensive=True)
            member = [ring.members[j] for j in rng.integers(0, len(ring.members), n).tolist()]
            device = [ring.devices[j] for j in rng.integers(0, len(ring.devices), n).tolist()]
            card = [ring.cards[j] for j in rng.integers(0, len(ring.cards), n).tolist()]
            octet = rng.integers(1, 255, n).tolist()
            hour = ((t_cart - t0) // US_PER_H).tolist()
            created = np.array([self.cust_created[m] for m in member])
            new_customer = (t_cart - created) < 7 * US_PER_DAY
            night = np.array(hour) < 5
            high_value = value > 4 * self.median_price
            new_device = np.zeros(n, dtype=bool)
            fraud_p, label = self._fraud(rng, new_customer, night, high_value, new_device, ring=True)
            warehouse = rng.integers(0, N_WAREHOUSES, n).tolist()
            channel = rng.choice(3, n, p=CHANNEL_P).tolist()
            rb = RingBurst(ring, int(t_cart[0]), new_members=new_members)
            tc, td, to = t_cart.tolist(), t_decide.tolist(), t_order.tolist()
            nc, ni, hv = new_customer.tolist(), night.tolist(), high_value.tolist()
            for i in range(n):
                rb.carts.append(
                    Cart(
                        tc[i],
                        td[i],
                        to[i],
                        member[i],
                        warehouse[i],
                        baskets[i],
                        device[i],
                        card[i],
                        f"{ring.ip_prefix}.{octet[i]}",
                        ring.address,
                        channel[i],
                        fraud_p[i],
                        label[i],
                        nc[i],
                        False,
                        ni[i],
                        hv[i],
                        "fraud_ring",
                        ring.ring_id,
                    )
                )
            out.append(rb)
        return out

    def _sample_checkout_bursts(
        self, rng: np.random.Generator, t0: int, pool: np.ndarray
    ) -> list[CheckoutBurst]:
        n = int(rng.poisson(self.rates["checkout_burst"])) if len(pool) else 0
        bursts: list[CheckoutBurst] = []
        for _ in range(n):
            units = int(rng.integers(1, 6))
            attempts = units + int(rng.integers(3, 31))
            t = t0 + int(rng.integers(9 * US_PER_H, 22 * US_PER_H))
            t_attempt = t + np.sort(rng.integers(0, int(rng.integers(1_000, 25_000)), attempts))
            t_decide = t_attempt + rng.integers(20_000, 250_000, attempts)
            extra = int(rng.binomial(attempts - units, BURST_RACE_WIN))
            custs = pool[rng.integers(0, len(pool), attempts)]
            new_customer = (t_attempt - np.array(self.cust_created)[custs]) < 7 * US_PER_DAY
            no = np.zeros(attempts, dtype=bool)
            fraud_p, label = self._fraud(rng, new_customer, no, no, no, ring=False)
            product = int(np.searchsorted(self.pop_cum, rng.random(), side="right"))
            bursts.append(
                CheckoutBurst(
                    warehouse=int(rng.integers(0, N_WAREHOUSES)),
                    product=min(product, self.n_products - 1),
                    units=units,
                    accepted=units + extra,
                    t_attempt=t_attempt.tolist(),
                    t_decide=t_decide.tolist(),
                    t_order=(t_decide + rng.integers(US_PER_S, 3 * US_PER_S, attempts)).tolist(),
                    custs=custs.tolist(),
                    channel=rng.choice(3, attempts, p=CHANNEL_P).tolist(),
                    fraud_p=fraud_p,
                    is_fraud=label,
                    new_customer=new_customer.tolist(),
                )
            )
        return bursts

    def _sample_adjustments(self, rng: np.random.Generator, t0: int) -> list[tuple[int, int, int, int]]:
        n = int(rng.poisson(0.01 * N_WAREHOUSES * self.n_products))
        at = np.sort(t0 + rng.integers(US_PER_H, 23 * US_PER_H, n)).tolist()
        w = rng.integers(0, N_WAREHOUSES, n).tolist()
        p = rng.integers(0, self.n_products, n).tolist()
        delta = rng.choice(np.array([-3, -2, -1, -1, 1, 2]), n).tolist()
        return list(zip(at, w, p, delta, strict=True))

    def _stock_change(
        self, t: int, w: int, p: int, delta: int, kind: str, reference: str | None, reason: str | None
    ) -> int:
        """Record a movement and the stock level it changes; returns the time used (monotonic per key)."""
        key = (w, p)
        t = max(t, self.stock_last_us.get(key, 0) + 1)
        self.stock_last_us[key] = t
        self.on_hand[w, p] += delta
        self.n_movement += 1
        mid = f"{self.code}-m-{self.n_movement:09d}"
        g = self.tl.group()
        self.tl.push(
            t,
            T_MOVEMENTS,
            "c",
            {"movement_id": mid},
            None,
            {
                "movement_id": mid,
                "warehouse_id": self.wh_ids[w],
                "sku": self.skus[p],
                "kind": kind,
                "quantity": delta,
                "reference": reference,
                "reason": reason,
                "moved_at": t,
            },
            g,
        )
        before = self.stock_rows[key]
        after = {**before, "on_hand": int(self.on_hand[w, p]), "updated_at": t}
        self.stock_rows[key] = after
        self.tl.push(t, T_STOCK, "u", {"warehouse_id": self.wh_ids[w], "sku": self.skus[p]}, before, after, g)
        return t

    def _receipts(self, t: int) -> None:
        low = np.argwhere(self.on_hand < self.reorder[np.newaxis, :]).tolist()
        for w, p in low:
            self.n_po += 1
            qty = int(self.target[p] - self.on_hand[w, p])
            self._stock_change(t, w, p, qty, "receipt", f"{self.code}-po-{self.n_po:07d}", None)

    def _adjust(self, t: int, w: int, p: int, delta: int) -> None:
        delta = max(delta, -int(self.on_hand[w, p]))
        if delta:
            self._stock_change(t, w, p, delta, "adjustment", None, "cycle_count")

    def _checkout_event(
        self,
        cart_id: str,
        cust: int,
        p: int,
        w: int,
        qty: int,
        t_attempt: int,
        t_decide: int,
        order_id: str | None,
        failure: str | None,
    ) -> str:
        self.n_checkout += 1
        cid = f"{self.code}-co-{self.n_checkout:09d}"
        key = {"checkout_id": cid}
        row = {
            "checkout_id": cid,
            "cart_id": cart_id,
            "customer_id": self.cust_ids[cust],
            "sku": self.skus[p],
            "warehouse_id": self.wh_ids[w],
            "quantity": qty,
            "status": "attempted",
            "order_id": None,
            "failure_reason": None,
            "created_at": t_attempt,
            "updated_at": t_attempt,
        }
        self.tl.push(t_attempt, T_CHECKOUTS, "c", key, None, row, self.tl.group())
        status = "failed" if failure else "succeeded"
        after = {
            **row,
            "status": status,
            "order_id": order_id,
            "failure_reason": failure,
            "updated_at": t_decide,
        }
        self.tl.push(t_decide, T_CHECKOUTS, "u", key, row, after, self.tl.group())
        return cid

    def _next_order_id(self) -> str:
        self.n_order += 1
        return f"{self.code}-o-{self.n_order:09d}"

    def _checkout(self, cart: Cart) -> PlacedOrder | None:
        """Check each line of a cart against stock (the legacy system is right for single carts)."""
        self.n_cart += 1
        cart_id = f"{self.code}-cart-{self.n_cart:09d}"
        w = cart.warehouse
        ok: list[bool] = []
        for p, q, _ in cart.lines:
            fits = int(self.on_hand[w, p]) >= q
            ok.append(fits)
            if fits:
                self.on_hand[w, p] -= q  # held while deciding the rest of the cart
        order_id = self._next_order_id() if any(ok) else None
        lines: list[tuple[int, int, int, int, int]] = []
        for j, ((p, q, disc), fits) in enumerate(zip(cart.lines, ok, strict=True)):
            self._checkout_event(
                cart_id,
                cart.cust,
                p,
                w,
                q,
                cart.t_cart + j * 1000,
                cart.t_decide + j,
                order_id if fits else None,
                None if fits else "out_of_stock",
            )
            if fits:
                assert order_id is not None
                self.on_hand[w, p] += q
                self._stock_change(cart.t_decide + j, w, p, -q, "sale", order_id, None)
                unit = int(self.price[p])
                discount = unit * q * disc // 100
                lines.append((p, q, unit, discount, unit * q - discount))
        if order_id is None:
            return None
        return PlacedOrder(order_id, cart, lines)

    def _checkout_burst(self, b: CheckoutBurst) -> list[PlacedOrder]:
        """Many carts within milliseconds for the last units of a SKU; the legacy system oversells."""
        self.n_burst += 1
        burst_id = f"{self.code}-burst-{self.n_burst:05d}"
        w, p, units = b.warehouse, b.product, b.units
        t_attempt, t_decide = b.t_attempt, b.t_decide
        attempts = len(t_attempt)
        current = int(self.on_hand[w, p])
        if current != units:  # a cycle count just before leaves exactly ``units`` on the shelf
            self._stock_change(
                t_attempt[0] - 1000, w, p, units - current, "adjustment", burst_id, "cycle_count"
            )
        by_decision = sorted(range(attempts), key=lambda i: (t_decide[i], i))
        winners = by_decision[: b.accepted]
        fair = list(range(units))  # first come, first served by attempt time
        order_ids = {i: self._next_order_id() for i in winners}
        checkout_ids: list[str] = []
        for i in range(attempts):
            self.n_cart += 1
            checkout_ids.append(
                self._checkout_event(
                    f"{self.code}-cart-{self.n_cart:09d}",
                    b.custs[i],
                    p,
                    w,
                    1,
                    t_attempt[i],
                    t_decide[i],
                    order_ids.get(i),
                    None if i in order_ids else "out_of_stock",
                )
            )
        placed: list[PlacedOrder] = []
        cancelled: list[str] = []
        unit = int(self.price[p])
        for rank, i in enumerate(winners):
            self._stock_change(t_decide[i], w, p, -1, "sale", order_ids[i], None)
            cust = b.custs[i]
            cart = Cart(
                t_attempt[i],
                t_decide[i],
                b.t_order[i],
                cust,
                w,
                [(p, 1, 0)],
                self.cust_device[cust],
                self.cust_card[cust],
                self.cust_ip[cust],
                self.cust_addr[cust],
                b.channel[i],
                b.fraud_p[i],
                b.is_fraud[i],
                b.new_customer[i],
                False,
                False,
                False,
                "checkout_burst",
            )
            order = PlacedOrder(order_ids[i], cart, [(p, 1, unit, 0, unit)], cancel=rank >= units)
            if order.cancel:
                cancelled.append(order.order_id)
            placed.append(order)
        self.truth.pain(
            "checkout_burst",
            self.code,
            self.topic["inventory.checkouts"],
            {"warehouse_id": self.wh_ids[w], "sku": self.skus[p]},
            t_attempt[0],
            True,
            burst_id=burst_id,
            units_available=units,
            attempts=attempts,
            should_win=min(units, attempts),
            accepted_by_source=len(winners),
            oversold=max(0, len(winners) - units),
        )
        self.truth.add(
            "checkout_bursts",
            {
                "burst_id": burst_id,
                "region": self.code,
                "warehouse_id": self.wh_ids[w],
                "sku": self.skus[p],
                "product_id": self.prod_ids[p],
                "started_at_ms": t_attempt[0] // 1000,
                "window_ms": (t_attempt[-1] - t_attempt[0]) / 1000,
                "units_available": units,
                "attempts": attempts,
                "should_win": min(units, attempts),
                "accepted_by_source": len(winners),
                "oversold": max(0, len(winners) - units),
                "checkout_ids": checkout_ids,
                "fair_winner_ids": [checkout_ids[i] for i in fair],
                "accepted_ids": [checkout_ids[i] for i in winners],
                "order_ids": [order_ids[i] for i in winners],
                "cancelled_order_ids": cancelled,
            },
        )
        return placed

    # --- the life of an order ----------------------------------------------------------------

    def _journal(
        self,
        tl: Timeline,
        t: int,
        kind: str,
        entries: list[tuple[str, str, int]],
        order_id: str | None,
        payment_id: str | None,
        orig: tuple[str, str, str] | None = None,
    ) -> str:
        """Book a balanced journal: ``entries`` of (account, side, amount in minor units), one event each.

        ``orig`` (currency, amount, rate) describes cash that arrived in another currency; it is
        shown on the cash entries (``bank``, ``intercompany_*``).
        """
        self.n_journal += 1
        jid = f"{self.code}-j-{self.n_journal:09d}"
        g = tl.group()
        for k, (account, side, amount) in enumerate(entries, 1):
            if amount == 0:
                continue
            eid = f"{jid}-{k}"
            o_cur, o_amt, o_rate = (
                orig
                if (orig is not None and account.startswith(("bank", "intercompany")))
                else (None, None, None)
            )
            tl.push(
                t,
                T_LEDGER,
                "c",
                {"entry_id": eid},
                None,
                {
                    "entry_id": eid,
                    "journal_id": jid,
                    "kind": kind,
                    "account": account,
                    "side": side,
                    "amount": self.fmt(amount),
                    "currency": self.cur,
                    "order_id": order_id,
                    "payment_id": payment_id,
                    "orig_currency": o_cur,
                    "orig_amount": o_amt,
                    "fx_rate": o_rate,
                    "booked_at": t,
                },
                g,
            )
        return jid

    def _lifecycles(self, rng: np.random.Generator, placed: list[PlacedOrder]) -> int:
        """Schedule payment, ledger, shipment and after-sales events of the day's orders.

        Returns how many orders were paid and not cancelled (the exposure of order-level pains).
        """
        n = len(placed)
        if n == 0:
            return 0
        rates = self.rates
        cancel = (rng.random(n) < CANCEL_SHARE) | np.array([o.cancel for o in placed])
        draws = LifeDraws.sample(rng, n, len(self.profile.carriers), max(len(self.others), 1))
        cancel_l = cancel.tolist()

        # exclusive payment pains: cumulative thresholds on one uniform draw
        p_missing = rates["missing_payment"]
        p_late = p_missing + rates["late_payment"]
        p_cross = p_late + (rates["cross_region_payment"] if self.others else 0.0)
        p_mismatch = p_cross + rates["currency_mismatch"]
        n_paid = n - int(cancel.sum())
        ex = self.truth.exposures
        for kind in (
            "missing_payment",
            "late_payment",
            "currency_mismatch",
            "ledger_break",
            "orphan_payment",
        ):
            ex[kind] += n_paid
        if self.others:
            ex["cross_region_payment"] += n_paid

        for i, order in enumerate(placed):
            pain = "none"
            if not cancel_l[i]:
                u = draws.pain_u[i]
                if u < p_missing:
                    pain = "missing_payment"
                elif u < p_late:
                    pain = "late_payment"
                elif u < p_cross:
                    pain = "cross_region_payment"
                elif u < p_mismatch:
                    pain = "currency_mismatch"
            self._order_life(order, draws, i, pain, cancel_l[i])
        return n_paid

    def _order_life(self, o: PlacedOrder, d: LifeDraws, i: int, pain: str, cancel: bool) -> None:
        """Schedule everything that happens to one placed order, from its creation to after-sales."""
        code, cur, fmt, tl, truth, rates = self.code, self.cur, self.fmt, self.tl, self.truth, self.rates
        cart = o.cart
        oid = o.order_id
        t_o = cart.t_order
        subtotal = sum(line[4] for line in o.lines)
        shipping = 0 if subtotal >= self.profile.free_shipping_from else self.profile.shipping_fee
        tax = round(subtotal * self.profile.tax_rate)
        total = subtotal + shipping + tax
        items = sum(line[1] for line in o.lines)
        channel = (
            CHANNELS[cart.channel] if self.channel_from is not None and t_o >= self.channel_from else None
        )

        # the order and its lines, in one transaction
        okey = {"order_id": oid}
        order: Row = {
            "order_id": oid,
            "customer_id": self.cust_ids[cart.cust],
            "status": "placed",
            "currency": cur,
            "subtotal": fmt(subtotal),
            "shipping_fee": fmt(shipping),
            "tax": fmt(tax),
            "total": fmt(total),
            "item_count": items,
            "warehouse_id": self.wh_ids[cart.warehouse],
            "device_id": cart.device,
            "card_fingerprint": cart.card,
            "ip": cart.ip,
            "shipping_address_hash": cart.address,
            "created_at": t_o,
            "updated_at": t_o,
            "channel": channel,
        }
        g = tl.group()
        tl.push(t_o, T_ORDERS, "c", okey, None, order, g)
        for ln, (p, q, unit, disc, line_total) in enumerate(o.lines, 1):
            lid = f"{oid}-{ln}"
            tl.push(
                t_o,
                T_LINES,
                "c",
                {"line_id": lid},
                None,
                {
                    "line_id": lid,
                    "order_id": oid,
                    "line_no": ln,
                    "product_id": self.prod_ids[p],
                    "sku": self.skus[p],
                    "quantity": q,
                    "unit_price": fmt(unit),
                    "discount": fmt(disc),
                    "line_total": fmt(line_total),
                    "currency": cur,
                    "created_at": t_o,
                },
                g,
            )
        self.truth.add(
            "fraud_truth",
            {
                "order_id": oid,
                "region": code,
                "customer_id": self.cust_ids[cart.cust],
                "created_at_ms": t_o // 1000,
                "currency": cur,
                "total": fmt(total),
                "device_id": cart.device,
                "card_fingerprint": cart.card,
                "ip": cart.ip,
                "shipping_address_hash": cart.address,
                "new_customer": cart.new_customer,
                "new_device": cart.new_device,
                "night": cart.night,
                "high_value": cart.high_value,
                "fraud_probability": cart.fraud_p,
                "is_fraud": cart.is_fraud,
                "ring_id": cart.ring_id,
                "source": cart.source,
            },
        )

        # payment capture
        t_auth = t_o + d.auth_s[i]
        t_cap = t_auth + d.cap_s[i]
        t_paid = t_cap + d.paid_s[i]
        day_o = tl.day_of(t_o)
        pc = "USD" if pain == "currency_mismatch" else cur
        order_rate = self.fx.rate(cur, day_o)
        amount = total if pc == cur else self.fx.to_usd(total, cur, order_rate)
        pfmt = fmt if pc == cur else self.fmt_usd
        fixed_fee = (
            10 if pc == "USD" else self.fx.from_usd(round(PROVIDER_FEE_FIXED_USD * 100), cur, order_rate)
        )
        fee = round(amount * PROVIDER_FEE_RATE) + fixed_fee
        if pain == "cross_region_payment":
            pay_code = self.others[d.other[i]]
            self.n_payment += 1
            pid = f"{pay_code}-pay-{code}{self.n_payment:09d}"
        else:
            pay_code = code
            self.n_payment += 1
            pid = f"{code}-pay-{self.n_payment:09d}"
        ptl = self.timelines[pay_code]
        pprof = REGION_PROFILES[pay_code]
        late = pain in ("late_payment", "cross_region_payment")
        t_created = t_cap + d.late_h[i] if late else t_auth
        ref_from = self.optional_ref_from[pay_code]
        nullable = ref_from is not None and t_created >= ref_from
        provider_ref = (
            None
            if nullable and d.null_ref_u[i] < NULL_PROVIDER_REF_SHARE
            else f"{pprof.provider_prefix}-{d.refs[i]:010X}"
        )
        pkey = {"payment_id": pid}
        payment: Row = {
            "payment_id": pid,
            "order_id": oid,
            "merchant_region": code,
            "provider": pprof.provider,
            "provider_ref": provider_ref,
            "method": METHODS[d.method[i]],
            "status": "authorized",
            "currency": pc,
            "amount": pfmt(amount),
            "fee": None,
            "settlement_currency": None,
            "settlement_amount": None,
            "settlement_fx_rate": None,
            "refunded_amount": pfmt(0),
            "captured_at": None,
            "settled_at": None,
            "created_at": t_created,
            "updated_at": t_created,
        }
        has_payment = pain != "missing_payment"
        if has_payment:
            if late:
                payment = {**payment, "status": "captured", "captured_at": t_cap}
                in_window = ptl.push(t_created, T_PAYMENTS, "c", pkey, None, payment, ptl.group())
                truth.pain(
                    pain,
                    pay_code,
                    f"{pay_code}.payments.payments",
                    pkey,
                    t_created,
                    in_window,
                    order_id=oid,
                    payment_id=pid,
                    currency=pc,
                    expected_amount=pfmt(amount),
                    actual_amount=pfmt(amount),
                    order_region=code,
                    payment_region=pay_code,
                    paid_at_ms=t_paid // 1000,
                    captured_at_ms=t_cap // 1000,
                    recorded_at_ms=t_created // 1000,
                    delay_hours=round((t_created - t_cap) / US_PER_H, 3),
                    local_days_late=ptl.day_of(t_created) - tl.day_of(t_cap),
                )
            else:
                ptl.push(t_auth, T_PAYMENTS, "c", pkey, None, payment, ptl.group())
                before = payment
                payment = {**payment, "status": "captured", "captured_at": t_cap, "updated_at": t_cap}
                ptl.push(t_cap, T_PAYMENTS, "u", pkey, before, payment, ptl.group())
                if pain == "currency_mismatch":
                    truth.pain(
                        pain,
                        code,
                        self.topic["payments.payments"],
                        pkey,
                        t_auth,
                        tl.in_window(t_auth),
                        order_id=oid,
                        payment_id=pid,
                        currency=pc,
                        expected_amount=fmt(total),
                        actual_amount=pfmt(amount),
                        order_currency=cur,
                        payment_currency=pc,
                        fx_rate=str(order_rate),
                    )
        else:
            truth.pain(
                pain,
                code,
                self.topic["shop.orders"],
                okey,
                t_paid,
                tl.in_window(t_paid),
                order_id=oid,
                currency=cur,
                expected_amount=fmt(total),
                actual_amount=None,
                paid_at_ms=t_paid // 1000,
            )

        # the shop marks the order paid and books it
        before = order
        order = {**order, "status": "paid", "updated_at": t_paid}
        g = tl.group()
        tl.push(t_paid, T_ORDERS, "u", okey, before, order, g)
        booked = total
        if not cancel and d.ledger_u[i] < rates["ledger_break"]:
            # off by a share of the total, all of it on revenue, which stays positive
            booked = max(total + round(total * d.ledger_pct[i]), total - subtotal + 1)
        jid = self._journal(
            tl,
            t_paid,
            "order_paid",
            [
                ("provider_clearing", "debit", booked),
                ("revenue", "credit", subtotal + booked - total),
                ("shipping_income", "credit", shipping),
                ("tax_payable", "credit", tax),
            ],
            oid,
            pid if has_payment else None,
        )
        if booked != total:
            truth.pain(
                "ledger_break",
                code,
                self.topic["finance.ledger_entries"],
                {"journal_id": jid},
                t_paid,
                tl.in_window(t_paid),
                order_id=oid,
                payment_id=pid if has_payment else None,
                currency=cur,
                expected_amount=fmt(total),
                actual_amount=fmt(booked),
                journal_id=jid,
                difference=fmt(booked - total),
            )

        if cancel:
            t_cancel = t_paid + d.cancel_after[i]
            before = order
            order = {**order, "status": "cancelled", "updated_at": t_cancel}
            tl.push(t_cancel, T_ORDERS, "u", okey, before, order, tl.group())
            before = payment
            payment = {
                **payment,
                "status": "refunded",
                "refunded_amount": pfmt(amount),
                "updated_at": t_cancel,
            }
            ptl.push(t_cancel, T_PAYMENTS, "u", pkey, before, payment, ptl.group())
            self._journal(
                tl,
                t_cancel,
                "cancellation",
                [("sales_returns", "debit", total), ("provider_clearing", "credit", total)],
                oid,
                pid,
            )
            return

        # settlement by the provider, hours (or, for late records, days) after capture
        t_set = (t_created + d.late_settle_h[i]) if late else (t_cap + d.settle_h[i])
        if has_payment:
            day_set = tl.day_of(t_set)
            ref = self.fx.rate(cur, day_set)
            sc = "USD" if (pc == "USD" or d.usd_settle[i]) else cur
            net = amount - fee
            rate_str: str | None = None
            applied = ref
            if sc != pc:
                ex_fx = True
                self.truth.exposures["fx_difference"] += 1
                if d.fx_u[i] < rates["fx_difference"]:
                    applied = (ref * (1 + Decimal(f"{d.fx_eps[i]:.6f}"))).quantize(Decimal("0.000001"))
                correct = self.fx.to_usd(net, cur, ref)
                settled = self.fx.to_usd(net, cur, applied)
                rate_str = str(applied)
            else:
                ex_fx = False
                correct = settled = net
            sfmt = self.fmt_usd if sc == "USD" else fmt
            in_window = ptl.in_window(t_set)
            if ex_fx and applied != ref:
                truth.pain(
                    "fx_difference",
                    pay_code,
                    f"{pay_code}.payments.payments",
                    pkey,
                    t_set,
                    in_window,
                    order_id=oid,
                    payment_id=pid,
                    currency=sc,
                    expected_amount=sfmt(correct),
                    actual_amount=sfmt(settled),
                    reference_rate=str(ref),
                    applied_rate=str(applied),
                    rate_date=str(tl.local_date(t_set)),
                    from_currency=cur,
                )
            self.truth.exposures["rounding_difference"] += 1
            if d.round_u[i] < rates["rounding_difference"]:
                before_round = settled
                settled += d.round_sign[i]
                truth.pain(
                    "rounding_difference",
                    pay_code,
                    f"{pay_code}.payments.payments",
                    pkey,
                    t_set,
                    in_window,
                    order_id=oid,
                    payment_id=pid,
                    currency=sc,
                    expected_amount=sfmt(before_round),
                    actual_amount=sfmt(settled),
                    difference=sfmt(settled - before_round),
                )
            before = payment
            payment = {
                **payment,
                "status": "settled",
                "fee": pfmt(fee),
                "settlement_currency": sc,
                "settlement_amount": sfmt(settled),
                "settlement_fx_rate": rate_str,
                "settled_at": t_set,
                "updated_at": t_set,
            }
            ptl.push(t_set, T_PAYMENTS, "u", pkey, before, payment, ptl.group())
            bank_l = settled if sc == cur else self.fx.from_usd(settled, cur, ref)
            fee_l = fee if pc == cur else self.fx.from_usd(fee, cur, ref)
            residual = total - fee_l - bank_l
            diff_account = "fx_difference" if (sc != cur or pc != cur) else "rounding_difference"
            bank = "bank" if pay_code == code else f"intercompany_{pay_code}"
            self._journal(
                tl,
                t_set,
                "payment_settled",
                [
                    (bank, "debit", bank_l),
                    ("provider_fees", "debit", fee_l),
                    (diff_account, "debit" if residual > 0 else "credit", abs(residual)),
                    ("provider_clearing", "credit", total),
                ],
                oid,
                pid,
                (sc, sfmt(settled), str(ref)) if sc != cur else None,
            )

        # shipment: created after payment, delivery hours lognormal by carrier and route
        t_ship = t_paid + d.ship_after[i]
        if not tl.in_window(t_ship):
            return  # the window ends before the warehouse ships: nothing more is observed
        car = self.profile.carriers[d.carrier[i]]
        cust_city = self.cust_city[cart.cust]
        city_name = self.profile.cities[cust_city]
        if cust_city == cart.warehouse:
            route = "same_city"
        elif city_name in self.profile.remote_cities:
            route = "remote"
        else:
            route = "domestic"
        mu0 = math.log(ROUTE_MEDIAN_HOURS[route] * car.speed)
        sigma = car.sigma
        self.truth.exposures["shipment_delay"] += 1
        disrupted = d.disrupt_u[i] < rates["shipment_delay"]
        factor = d.disrupt_factor[i] if disrupted else 1.0
        mu = mu0 + math.log(factor)
        hours = math.exp(mu + sigma * d.z[i])
        promise_t = t_ship + int(math.exp(mu0 + PROMISE_Z * sigma) * US_PER_H)
        promised = tl.local_date(promise_t)
        promised_days = epoch_days(promised)
        t_del = t_ship + int(hours * US_PER_H)
        stages = (
            ("created", t_ship, self.wh_rows[cart.warehouse]["city"]),
            ("picked", t_ship + int(hours * d.f_pick[i] * US_PER_H), self.wh_rows[cart.warehouse]["city"]),
            ("in_transit", t_ship + int(hours * d.f_transit[i] * US_PER_H), f"{car.name} hub"),
            ("out_for_delivery", t_ship + int(hours * d.f_ofd[i] * US_PER_H), city_name),
            ("delivered", t_del, city_name),
        )
        self.n_shipment += 1
        sid = f"{code}-s-{self.n_shipment:09d}"
        skey = {"shipment_id": sid}
        weight = round(sum(float(self.weight[p]) * q for p, q, *_ in o.lines), 3)
        shipment: Row = {}
        for k, (status, t, location) in enumerate(stages, 1):
            g = tl.group()
            if k == 1:
                shipment = {
                    "shipment_id": sid,
                    "order_id": oid,
                    "warehouse_id": self.wh_ids[cart.warehouse],
                    "carrier": car.name,
                    "route": route,
                    "status": status,
                    "weight_kg": weight,
                    "promised_date": promised_days,
                    "created_at": t,
                    "updated_at": t,
                    "delivered_at": None,
                }
                tl.push(t, T_SHIPMENTS, "c", skey, None, shipment, g)
            else:
                before = shipment
                shipment = {**shipment, "status": status, "updated_at": t}
                if status == "delivered":
                    shipment["delivered_at"] = t
                tl.push(t, T_SHIPMENTS, "u", skey, before, shipment, g)
            eid = f"{sid}-{k}"
            tl.push(
                t,
                T_SHIP_EVENTS,
                "c",
                {"event_id": eid},
                None,
                {
                    "event_id": eid,
                    "shipment_id": sid,
                    "status": status,
                    "location": location,
                    "occurred_at": t,
                },
                g,
            )
            if status in ("in_transit", "delivered"):
                before = order
                order = {
                    **order,
                    "status": "shipped" if status == "in_transit" else "delivered",
                    "updated_at": t,
                }
                tl.push(t, T_ORDERS, "u", okey, before, order, tl.group())
        slipped = tl.local_date(t_del) > promised
        next_day = tl.midnight_us(promised + timedelta(days=1))
        self.truth.add(
            "delivery_truth",
            {
                "shipment_id": sid,
                "order_id": oid,
                "region": code,
                "warehouse_id": self.wh_ids[cart.warehouse],
                "carrier": car.name,
                "route": route,
                "distribution": "lognormal",
                "mu": mu,
                "sigma": sigma,
                "median_hours": math.exp(mu),
                "disrupted": disrupted,
                "disruption_factor": factor,
                "created_at_ms": t_ship // 1000,
                "promised_date": promised,
                "promised_by_ms": next_day // 1000 - 1,
                "sampled_hours": hours,
                "delivered_at_ms": t_del // 1000,
                "slipped": slipped,
                "delivered_in_window": tl.in_window(t_del),
            },
        )
        if disrupted:
            truth.pain(
                "shipment_delay",
                code,
                self.topic["logistics.shipments"],
                skey,
                t_del,
                tl.in_window(t_del),
                order_id=oid,
                shipment_id=sid,
                carrier=car.name,
                route=route,
                disruption_factor=factor,
                promised_date=str(promised),
                delivered_date=str(tl.local_date(t_del)),
                slipped=slipped,
                sampled_hours=round(hours, 3),
            )

        if not has_payment:
            return
        # after-sales: a chargeback for fraud, else perhaps a partial refund
        if cart.is_fraud:
            t_cb = max(t_cap + d.chargeback_after[i], t_set + US_PER_H)
            before = payment
            payment = {
                **payment,
                "status": "charged_back",
                "refunded_amount": pfmt(amount),
                "updated_at": t_cb,
            }
            ptl.push(t_cb, T_PAYMENTS, "u", pkey, before, payment, ptl.group())
            bank = "bank" if pay_code == code else f"intercompany_{pay_code}"
            self._journal(
                tl,
                t_cb,
                "chargeback",
                [("chargeback_losses", "debit", total), (bank, "credit", total)],
                oid,
                pid,
            )
            return
        self.truth.exposures["partial_refund"] += 1
        if d.refund_u[i] < rates["partial_refund"]:
            t_ref = max(t_del + d.refund_after[i], t_set + US_PER_H)
            refund = max(round(amount * d.refund_pct[i]), 1)
            refund_l = (
                refund if pc == cur else self.fx.from_usd(refund, cur, self.fx.rate(cur, tl.day_of(t_ref)))
            )
            before = payment
            payment = {
                **payment,
                "status": "partially_refunded",
                "refunded_amount": pfmt(refund),
                "updated_at": t_ref,
            }
            in_window = ptl.push(t_ref, T_PAYMENTS, "u", pkey, before, payment, ptl.group())
            before = order
            order = {**order, "status": "partially_refunded", "updated_at": t_ref}
            tl.push(t_ref, T_ORDERS, "u", okey, before, order, tl.group())
            bank = "bank" if pay_code == code else f"intercompany_{pay_code}"
            self._journal(
                tl,
                t_ref,
                "refund",
                [("sales_returns", "debit", refund_l), (bank, "credit", refund_l)],
                oid,
                pid,
            )
            truth.pain(
                "partial_refund",
                pay_code,
                f"{pay_code}.payments.payments",
                pkey,
                t_ref,
                in_window,
                order_id=oid,
                payment_id=pid,
                currency=pc,
                expected_amount=pfmt(amount),
                actual_amount=pfmt(refund),
                refund_share=round(refund / amount, 4),
                refunded_local=fmt(refund_l),
            )

    def _orphan_payments(self, rng: np.random.Generator, t0: int, paid: int) -> None:
        """Payments the provider records for orders that do not exist."""
        n = int(rng.binomial(paid, self.rates["orphan_payment"])) if paid else 0
        if n == 0:
            return
        at = np.sort(t0 + rng.integers(US_PER_H, 22 * US_PER_H, n)).tolist()
        amounts = np.maximum(np.round(rng.lognormal(math.log(self.median_price * 2), 0.6, n)), 1).astype(
            np.int64
        )
        settle = rng.integers(2 * US_PER_H, 30 * US_PER_H, n).tolist()
        refs = rng.integers(0, 2**40, n).tolist()
        method = rng.choice(3, n, p=METHOD_P).tolist()
        code, fmt, tl = self.code, self.fmt, self.tl
        for j in range(n):
            self.n_orphan += 1
            self.n_payment += 1
            pid = f"{code}-pay-{self.n_payment:09d}"
            ghost = f"{code}-o-{900_000_000 + self.n_orphan:09d}"
            amount = int(amounts[j])
            fee = round(amount * PROVIDER_FEE_RATE)
            t, t_set = at[j], at[j] + settle[j]
            pkey = {"payment_id": pid}
            row: Row = {
                "payment_id": pid,
                "order_id": ghost,
                "merchant_region": code,
                "provider": self.profile.provider,
                "provider_ref": f"{self.profile.provider_prefix}-{refs[j]:010X}",
                "method": METHODS[method[j]],
                "status": "captured",
                "currency": self.cur,
                "amount": fmt(amount),
                "fee": None,
                "settlement_currency": None,
                "settlement_amount": None,
                "settlement_fx_rate": None,
                "refunded_amount": fmt(0),
                "captured_at": t,
                "settled_at": None,
                "created_at": t,
                "updated_at": t,
            }
            tl.push(t, T_PAYMENTS, "c", pkey, None, row, tl.group())
            settled = {
                **row,
                "status": "settled",
                "fee": fmt(fee),
                "settlement_currency": self.cur,
                "settlement_amount": fmt(amount - fee),
                "settled_at": t_set,
                "updated_at": t_set,
            }
            tl.push(t_set, T_PAYMENTS, "u", pkey, row, settled, tl.group())
            self._journal(
                tl,
                t_set,
                "payment_settled",
                [
                    ("bank", "debit", amount - fee),
                    ("provider_fees", "debit", fee),
                    ("suspense", "credit", amount),
                ],
                None,
                pid,
            )
            self.truth.pain(
                "orphan_payment",
                code,
                self.topic["payments.payments"],
                pkey,
                t,
                True,
                order_id=ghost,
                payment_id=pid,
                currency=self.cur,
                expected_amount=None,
                actual_amount=fmt(amount),
            )


def phone_prefix(code: str) -> str:
    return {"vn": "84", "sg": "65", "th": "66", "my": "60", "id": "62", "ph": "63"}[code]


def schema_change_us(tl: Timeline, fraction: float, days: int) -> int:
    """When a scheduled schema change happens in a region: ``fraction`` of its window, to the second."""
    offset_s = round(fraction * days * 86_400)
    return tl.start_us + offset_s * US_PER_S


assert set(IP_OCTET) == set(REGIONS)
