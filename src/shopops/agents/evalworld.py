"""The evaluation world: a small simulated company the golden set is asked about.

Built once into a folder (by default ``$SHOPOPS_HOME/agents/eval-world``) and reused while its
recipe is unchanged: the simulator's CDC streams, the reconciliation of its window, the schema
drift watch over its streams, the reservation store synced from its stock stream with the checkout
bursts replayed, and the knowledge base ingested. Everything runs on the embedded backends, so an
evaluation never touches the data of the platform it runs beside; the model under evaluation and
the policies are the caller's.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shopops.core.logging import get_logger
from shopops.core.settings import Settings

log = get_logger(__name__)

MARKER = "world.json"
#: Bump when the recipe below changes what a world holds.
RECIPE_VERSION = 1

Step = Callable[[str], None]


class WorldConfig(BaseModel):
    """The simulated company of an evaluation (the ``world`` section of the golden set)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regions: list[str] = ["vn", "sg", "th"]
    days: int = Field(default=14, ge=1, le=60)
    orders_per_day: int = Field(default=15, ge=1, le=2000)
    seed: int = 42

    def digest(self, knowledge_dir: Path) -> str:
        """What the world depends on: this config, the recipe, the knowledge base's files and the
        code that builds it (simulator, reconciliation, drift watch, reservations, ingestion)."""
        h = hashlib.sha256(orjson.dumps([RECIPE_VERSION, self.model_dump(mode="json")]))
        package = Path(__file__).resolve().parents[1]
        sources = [package / name for name in _BUILDERS]
        for root, files in ((knowledge_dir, sorted(knowledge_dir.rglob("*"))), (package, sources)):
            for path in files:
                for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
                    if file.is_file():
                        h.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
        return h.hexdigest()[:16]


#: The code a world is built with (relative to the shopops package).
_BUILDERS = ("simulator", "reconciliation", "schemas/drift.py", "inventory", "rag", "events")


@dataclass
class EvalWorld:
    """A built world: its settings (embedded backends in ``home``)."""

    home: Path
    settings: Settings
    config: WorldConfig


def world_settings(base: Settings, home: Path, knowledge_dir: Path) -> Settings:
    """The caller's settings with every store moved into ``home`` on the embedded backends."""
    data = base.model_dump(mode="python")
    data.update(
        home=home,
        profile="demo",
        events={"type": "sqlite"},
        inventory={"type": "sqlite"},
    )
    data["schemas"] = {**data["schemas"], "store": {"type": "sqlite"}, "registry": {"type": "builtin"}}
    data["reconciliation"] = {
        **data["reconciliation"],
        "engine": {"type": "duckdb"},
        "source": {"type": "parquet"},
        "results_dir": Path("reconciliation/results"),
    }
    governance = dict(data["governance"])
    governance.update(keys={"type": "sqlite"}, audit={"type": "sqlite"}, audit_log_lines=False)
    data["governance"] = governance
    if "rag" in data:
        data["rag"] = {
            **data["rag"],
            "qdrant_url": None,
            "knowledge_dir": knowledge_dir,
            "ingest_on_start": False,
        }
    agents = dict(data["agents"])
    agents["tracing"] = {**agents["tracing"], "file": Path("agents/traces.jsonl")}
    data["agents"] = agents
    return Settings(**data)


def build_world(
    base: Settings,
    config: WorldConfig,
    knowledge_dir: Path,
    home: Path | None = None,
    *,
    step: Step | None = None,
) -> EvalWorld:
    """Build the world into ``home`` unless a world of the same recipe is already there."""
    home = home or base.home / "agents" / "eval-world"
    settings = world_settings(base, home, knowledge_dir)
    digest = config.digest(knowledge_dir)
    marker = home / MARKER
    if marker.is_file() and orjson.loads(marker.read_bytes()).get("digest") == digest:
        return EvalWorld(home, settings, config)
    say = step or (lambda _message: None)
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    from shopops.bootstrap import build_platform

    platform = build_platform(settings)
    try:
        _populate(platform, config, knowledge_dir, say)
    finally:
        platform.close()
    marker.write_bytes(orjson.dumps({"digest": digest, "config": config.model_dump(mode="json")}))
    return EvalWorld(home, settings, config)


def _populate(platform: Any, config: WorldConfig, knowledge_dir: Path, say: Step) -> None:
    from shopops.inventory.bursts import OUTCOMES_FILE, replay_checkout_bursts
    from shopops.inventory.cdc import read_cdc_stock
    from shopops.schemas.drift import DriftWatch
    from shopops.simulator.service import SimulationConfig, run_simulation

    settings = platform.settings
    sim = SimulationConfig(
        regions=config.regions, days=config.days, orders_per_day=config.orders_per_day, seed=config.seed
    )
    say(f"simulating {config.days} days of {', '.join(config.regions)}")
    run_simulation(sim, platform.event_log, platform.truth_dir, parallel=False)
    say("reconciling the window")
    service = platform.reconciliation
    service.export_inputs(list(config.regions))
    service.run(sim.start, sim.start + timedelta(days=config.days - 1), list(config.regions))
    say("checking every CDC stream's schemas (drift watch)")
    DriftWatch(platform.event_log, platform.schema_client, settings.schemas.drift).drain()
    say("syncing stock and replaying the checkout bursts")
    platform.inventory.sync_stock(read_cdc_stock(platform.event_log, config.regions).on_hand)
    outcomes = replay_checkout_bursts(platform.inventory, platform.truth_dir / "checkout_bursts.parquet")
    (settings.home / OUTCOMES_FILE).write_bytes(
        orjson.dumps([o.to_dict() for o in outcomes], option=orjson.OPT_INDENT_2)
    )
    say(f"ingesting the knowledge base {knowledge_dir}")
    platform.rag.ingest(knowledge_dir)
