"""The reservation torture: many processes and threads racing for the last units, and the checks
that prove nothing was oversold, lost or left hanging.

Run as a script it is one worker process (``python torture.py SPEC.json``): ``threads`` clients
that reserve random multi-line carts across warehouses with short TTLs, then confirm (some too
late), release, extend, abandon, cancel, and retry with the same idempotency key. Every confirm
and cancel a client got back is appended to its log file before anything else happens, so a
worker killed with SIGKILL leaves a true (if short) record.

Imported, :func:`run_torture` drives a whole run from the test process: it stocks the items,
runs the sweeper, a sampler that checks ``committed + held <= on_hand`` on consistent snapshots
as fast as it can, and a restocker; starts the workers, kills one mid-run, lets every hold settle,
then checks the store against the clients' logs, its own reservations and the published events.
This module imports only shopops and the standard library, so it runs as a plain script.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shopops.core.errors import ShopopsError
from shopops.core.registry import BackendSelection
from shopops.events.backends import open_event_log
from shopops.events.port import EventLog
from shopops.inventory.backends import open_reservation_store
from shopops.inventory.model import (
    HoldExpiredError,
    InsufficientStockError,
    Replay,
    ReservationLimits,
    ReservationStatus,
    StockKey,
    event_from_dict,
)
from shopops.inventory.naive import NaiveReservationStore
from shopops.inventory.port import ReservationStore
from shopops.inventory.service import TOPIC, InventoryService

LIMITS = ReservationLimits(min_ttl_ms=100)
RELAY_LEASE_MS = 1_000


@dataclass
class WorkerSpec:
    """What one worker process does; written as JSON for the subprocess."""

    selection: dict[str, Any]
    home: str
    naive: bool
    out_dir: str
    worker: int
    threads: int
    start_at: float
    stop_at: float
    items: list[list[str]]
    ttl_min_ms: int
    ttl_max_ms: int
    seed: int
    events_home: str
    publish_inline: bool
    sweeper: bool


def open_store(selection: dict[str, Any], home: Path, naive: bool) -> ReservationStore:
    if naive:
        options = {k: v for k, v in selection.items() if k != "type"}
        return NaiveReservationStore(NaiveReservationStore.Config(**options), home)
    return open_reservation_store(BackendSelection(**selection), home=home)


# --- the worker process ------------------------------------------------------------------------


class Client:
    """One thread of a worker: a shopper who keeps trying to buy the scarce items."""

    def __init__(self, spec: WorkerSpec, svc: InventoryService, tid: int) -> None:
        self.spec = spec
        self.svc = svc
        self.tid = tid
        self.rng = random.Random(spec.seed * 1000 + tid)
        self.stats: Counter[str] = Counter()
        self.path = Path(spec.out_dir) / f"w{spec.worker}-t{tid}.log"

    def note(self, out: Any, line: str) -> None:
        out.write(line + "\n")
        out.flush()  # to the kernel: survives SIGKILL of this process

    def sleep_ms(self, low: float, high: float) -> None:
        time.sleep(self.rng.uniform(low, high) / 1000)

    def run(self) -> None:
        spec, rng, svc = self.spec, self.rng, self.svc
        with self.path.open("a", encoding="ascii") as out:
            n = 0
            while time.time() < spec.stop_at:
                n += 1
                lines = [
                    (*rng.choice(spec.items), rng.choice((1, 1, 1, 2)))
                    for _ in range(rng.choice((1, 1, 2, 2, 3)))
                ]
                key = f"w{spec.worker}-t{self.tid}-{n}"
                ttl = rng.randint(spec.ttl_min_ms, spec.ttl_max_ms)
                try:
                    res = svc.reserve(lines, ttl, key)
                except InsufficientStockError:
                    self.stats["refused"] += 1
                    self.sleep_ms(5, 50)
                    continue
                except ShopopsError as exc:
                    self.stats["errors"] += 1
                    self.note(out, f"E reserve {key} {exc}")
                    continue
                self.stats["reserved"] += 1
                try:
                    if rng.random() < 0.1:  # a client retry: must be the same reservation
                        again = svc.reserve(lines, ttl, key)
                        if again.id != res.id:
                            self.note(out, f"E idempotency {key} {res.id} {again.id}")
                    self.act(out, res.id, ttl)
                except ShopopsError as exc:
                    self.stats["errors"] += 1
                    self.note(out, f"E {res.id} {type(exc).__name__} {exc}")

    def act(self, out: Any, rid: str, ttl: int) -> None:
        """What the shopper does with a hold: confirm soon (45%), confirm around the TTL, some too
        late (20%), release (15%), walk away (10%), or extend and confirm after the first TTL (10%)."""
        roll = self.rng.random()
        if roll < 0.45:
            self.sleep_ms(0, ttl * 0.3)
        elif roll < 0.65:
            self.sleep_ms(ttl * 0.7, ttl * 1.3)
        elif roll < 0.80:
            self.sleep_ms(0, ttl * 0.3)
            self.svc.release(rid)
            self.stats["released"] += 1
            return
        elif roll < 0.90:
            self.stats["abandoned"] += 1  # the sweeper will expire it
            return
        else:
            self.sleep_ms(ttl * 0.3, ttl * 0.6)
            try:
                self.svc.extend(rid, ttl)
            except HoldExpiredError:
                self.stats["late"] += 1
                return
            self.stats["extended"] += 1
            self.sleep_ms(ttl * 0.5, ttl * 0.9)  # past the first TTL, within the extension
        try:
            self.svc.confirm(rid)
        except HoldExpiredError:
            self.stats["late"] += 1
            return
        self.note(out, f"C {rid}")
        self.stats["confirmed"] += 1
        if self.rng.random() < 0.15:
            self.note(out, f"X? {rid}")
            self.svc.cancel(rid)
            self.note(out, f"X {rid}")
            self.stats["cancelled"] += 1


def worker_main(spec_path: str) -> None:
    spec = WorkerSpec(**json.loads(Path(spec_path).read_text()))
    store = open_store(spec.selection, Path(spec.home), spec.naive)
    events = open_event_log(BackendSelection(type="sqlite"), home=Path(spec.events_home))
    svc = InventoryService(
        store, events, limits=LIMITS, publish_inline=spec.publish_inline, relay_lease_ms=RELAY_LEASE_MS
    )
    sweeper = svc.sweeper(0.2).start() if spec.sweeper else None
    clients = [Client(spec, svc, tid) for tid in range(spec.threads)]
    threads = [threading.Thread(target=c.run, name=f"client-{c.tid}") for c in clients]
    time.sleep(max(0.0, spec.start_at - time.time()))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if sweeper is not None:
        sweeper.stop()
    total: Counter[str] = Counter()
    for c in clients:
        total.update(c.stats)
    svc.close()
    events.close()
    Path(spec.out_dir, f"w{spec.worker}.stats.json").write_text(json.dumps(dict(total)))


# --- the run and its checks ----------------------------------------------------------------------


@dataclass
class TortureReport:
    """What a run did and every violation found (empty lists: the store kept its promises)."""

    samples: int = 0
    oversell: list[str] = field(default_factory=list)
    lost_confirms: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    table_mismatch: list[str] = field(default_factory=list)
    event_mismatch: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    reservations: int = 0
    events: int = 0
    duration_s: float = 0.0
    killed_worker: int | None = None

    def summary(self) -> str:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        fields["stats"] = dict(self.stats)
        return json.dumps({k: v for k, v in fields.items() if v}, default=str)[:4000]


class Sampler(threading.Thread):
    """Reads every level in one snapshot, again and again, and records any oversold instant."""

    def __init__(self, store: ReservationStore, report: TortureReport) -> None:
        super().__init__(name="sampler", daemon=True)
        self.store = store
        self.report = report
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            now = time.time_ns() // 1_000_000
            for level in self.store.all_stock(now):
                if level.committed + level.held > level.on_hand or level.held < 0 or level.committed < 0:
                    self.report.oversell.append(
                        f"at {now}: {level.key} on_hand={level.on_hand} committed={level.committed} "
                        f"held={level.held}"
                    )
            self.report.samples += 1
            time.sleep(0.002)


def read_events(events_home: Path) -> list[dict[str, Any]]:
    log = open_event_log(BackendSelection(type="sqlite"), home=events_home)
    try:
        out: list[dict[str, Any]] = []
        for partition in sorted(log.end_offsets(TOPIC)):
            offset = 0
            while True:
                batch = log.read(TOPIC, partition, offset, 5_000)
                if not batch:
                    break
                out += [orjson.loads(r.value or b"{}") for r in batch]
                offset = batch[-1].offset + 1
        return out
    finally:
        log.close()


def parse_client_logs(out_dir: Path) -> tuple[set[str], set[str], set[str], list[str]]:
    """Confirmed ids, ids a cancel was tried on, ids surely cancelled, and error lines."""
    confirmed, cancelling, cancelled, errors = set(), set(), set(), []
    for path in sorted(out_dir.glob("w*-t*.log")):
        for line in path.read_text(encoding="ascii", errors="replace").splitlines():
            tag, _, rest = line.partition(" ")
            if tag == "C" and rest:
                confirmed.add(rest)
            elif tag == "X?" and rest:
                cancelling.add(rest)
            elif tag == "X" and rest:
                cancelled.add(rest)
            elif tag == "E":
                errors.append(f"{path.name}: {line}")
    return confirmed, cancelling, cancelled, errors


def run_torture(
    selection: BackendSelection,
    home: Path,
    work: Path,
    *,
    naive: bool = False,
    processes: int = 4,
    threads: int = 16,
    duration_s: float = 8.0,
    kill: bool = True,
    seed: int = 7,
) -> TortureReport:
    """One torture run against the store named by ``selection``; returns what was found."""
    report = TortureReport()
    started = time.monotonic()
    rng = random.Random(seed)
    events_home = work / "events"
    out_dir = work / "clients"
    out_dir.mkdir(parents=True, exist_ok=True)
    sel = selection.model_dump()
    store = open_store(sel, home, naive)
    event_log: EventLog = open_event_log(BackendSelection(type="sqlite"), home=events_home)
    svc = InventoryService(store, event_log, limits=LIMITS, relay_lease_ms=RELAY_LEASE_MS)
    items = [[f"HOT-{s}", f"wh-{w}"] for s in range(6) for w in range(2)]
    for sku, wh in items:
        svc.set_stock(sku, wh, rng.randint(2, 6), reason="initial")
    sweeper = svc.sweeper(0.2).start()
    sampler = Sampler(open_store(sel, home, naive), report)
    sampler.start()

    start_at = time.time() + 2.0  # the workers import and connect meanwhile
    stop_at = start_at + duration_s
    procs: list[subprocess.Popen[bytes]] = []
    for w in range(processes):
        spec = WorkerSpec(
            selection=sel,
            home=str(home),
            naive=naive,
            out_dir=str(out_dir),
            worker=w,
            threads=threads,
            start_at=start_at,
            stop_at=stop_at,
            items=items,
            ttl_min_ms=300,
            ttl_max_ms=800,
            seed=seed * 100 + w,
            events_home=str(events_home),
            publish_inline=w < 2,
            sweeper=w == processes - 1,
        )
        spec_path = work / f"w{w}.json"
        spec_path.write_text(json.dumps(asdict(spec)))
        with (work / f"w{w}.stderr").open("wb") as err:
            procs.append(subprocess.Popen([sys.executable, __file__, str(spec_path)], stderr=err))

    # Restock a unit or two every 100 ms while the clients race: sold units never come back, and
    # stock that grows under the racers is part of the test.
    restocks = 0
    kill_at = start_at + 0.4 * duration_s
    while time.time() < stop_at:
        time.sleep(0.1)
        sku, wh = rng.choice(items)
        svc.adjust_stock(sku, wh, rng.randint(1, 2), reason="restock")
        restocks += 1
        if kill and report.killed_worker is None and time.time() >= kill_at:
            os.kill(procs[0].pid, signal.SIGKILL)
            report.killed_worker = 0
    for w, proc in enumerate(procs):
        code = proc.wait(timeout=60)
        if w != report.killed_worker and code != 0:
            stderr = (work / f"w{w}.stderr").read_text(errors="replace")[-2000:]
            report.client_errors.append(f"worker {w} exited with {code}: {stderr}")

    # Settle: every hold expires or was settled, every event is published.
    deadline = time.time() + 15
    while time.time() < deadline:
        if not store.reservations(ReservationStatus.HELD, limit=1) and store.pending_outbox() == 0:
            break
        time.sleep(0.1)
    sampler.stop_event.set()
    sampler.join(10)
    sweeper.stop()
    svc.publish_events()
    now = time.time_ns() // 1_000_000

    for w in range(processes):
        stats_path = out_dir / f"w{w}.stats.json"
        if stats_path.exists():
            report.stats.update(json.loads(stats_path.read_text()))
    report.stats["restocks"] = restocks

    # 1. Nothing confirmed to a client was lost.
    confirmed, cancelling, cancelled, errors = parse_client_logs(out_dir)
    report.client_errors += errors
    reservations = []
    after = ""
    while page := store.reservations(after_id=after, limit=1000):
        reservations += page
        after = page[-1].id
    report.reservations = len(reservations)
    by_id = {r.id: r for r in reservations}
    for rid in sorted(confirmed):
        status = by_id[rid].status if rid in by_id else None
        allowed = (
            {ReservationStatus.CANCELLED}
            if rid in cancelled
            else {ReservationStatus.CONFIRMED, ReservationStatus.CANCELLED}
            if rid in cancelling
            else {ReservationStatus.CONFIRMED}
        )
        if status not in allowed:
            report.lost_confirms.append(f"{rid} confirmed to a client but is {status}")

    # 2. Every hold expired or was settled.
    for res in reservations:
        if res.status is ReservationStatus.HELD:
            report.unsettled.append(f"{res.id} still held (expires {res.expires_at_ms}, now {now})")
    report.unsettled += [f"{r.id} overdue" for r in store.overdue_holds(now)]
    if store.pending_outbox():
        report.unsettled.append(f"{store.pending_outbox()} events never published")

    # 3. The stock equals the reservations table, and a replay of the events.
    committed: Counter[StockKey] = Counter()
    for res in reservations:
        if res.status is ReservationStatus.CONFIRMED:
            for line in res.lines:
                committed[line.key] += line.quantity
    levels = {level.key: level for level in store.all_stock(now)}
    for key, level in sorted(levels.items()):
        if level.committed != committed[key] or level.held != 0:
            report.table_mismatch.append(
                f"{key}: store committed={level.committed} held={level.held}, "
                f"reservations say committed={committed[key]} held=0"
            )
        if level.committed > level.on_hand:
            report.oversell.append(f"final: {key} committed={level.committed} > on_hand={level.on_hand}")
    events = read_events(events_home)
    report.events = len(events)
    replay = Replay().apply_all(event_from_dict(e) for e in events)
    for key, level in sorted(levels.items()):
        if replay.level(key) != (level.on_hand, level.committed, level.held):
            report.event_mismatch.append(f"{key}: store {level}, events say {replay.level(key)}")
    for res in reservations:
        if replay.status.get(res.id) is not res.status:
            report.event_mismatch.append(
                f"{res.id}: store {res.status}, events say {replay.status.get(res.id)}"
            )
    if len(replay.status) != len(reservations):
        report.event_mismatch.append(
            f"{len(replay.status)} reservations in events, {len(reservations)} stored"
        )
    report.stats["blocked"] = sum(level.blocked for level in levels.values())
    report.stats["duplicate_events"] = replay.duplicates
    svc.close()
    sampler.store.close()
    event_log.close()
    report.duration_s = round(time.monotonic() - started, 1)
    return report


if __name__ == "__main__":
    worker_main(sys.argv[1])
