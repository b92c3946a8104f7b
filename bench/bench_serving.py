"""Online fraud scoring over HTTP: requests/s and p99 under wrk, beside two baselines in the same run.

    python bench/bench_serving.py [--home DIR] [--duration 10] [--connections 16] [--threads 2]
                                  [--rounds 3] [--skip-mlflow] [--in-process 3000] [--json out.json]

It builds (or reuses, with ``--home``) a small simulated world: CDC topics → lake → feature store
materialized → fraud model trained on the feature store's frames and promoted to ``champion``.
Then the three servers are started, each one process on a free loopback port, and ``wrk`` drives
one at a time, in ``--rounds`` interleaved rounds (shopops, bare, mlflow, shopops, ...: the shared
machine's drifting load weighs on each alike; requests/s is the mean of the rounds):

- **shopops** — ``POST /v1/score/fraud`` of the platform app (API key and Cedar decision per request,
  online features from the feature store, the champion's native booster, SHAP reasons, prediction
  log), bodies rotating over real orders' ids;
- **mlflow** — ``mlflow models serve -m models:/fraud/<v> --env-manager local`` (the same model,
  one ``dataframe_split`` row per request, no features fetched);
- **bare** — a FastAPI app calling ``lightgbm.Booster.predict`` on the same booster with the
  feature values in the request (no features fetched, no auth, no reasons).

The wrk command for each is printed, e.g.::

    wrk -t2 -c16 -d10s --latency -s body.lua http://127.0.0.1:PORT/v1/score/fraud

Targets (issue): shopops >= 10x mlflow models serve, and >= 0.5x the bare app, on 2 cores.
Training time of both models is reported too (the features are materialized before), and, in the
bench's own process, the in-process costs: ``ServingService.score("fraud", ...)`` and the online read
``FeatureService.online_features`` (direct from the store, and through Feast's
``get_online_features``). The load average is printed beside every figure (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

console = Console()
ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the world ------------------------------------------------------------------------------------


def build_world(home: Path) -> dict[str, Any]:
    """Simulate, ingest, materialize, train both models (timed) and promote fraud; returns facts."""
    from shopops.bootstrap import build_features, build_platform, build_training
    from shopops.core.settings import Settings
    from shopops.lake.catalog import open_catalog
    from shopops.lake.ingest import LakeIngestor
    from shopops.ml.tracking.service import CHAMPION
    from shopops.simulator.service import SimulationConfig, run_simulation

    settings = Settings(home=home)
    platform = build_platform(settings)
    facts: dict[str, Any] = {}
    try:
        marker = home / "bench-world.json"
        if not marker.exists():
            config = SimulationConfig(
                regions=["vn", "sg", "th"], days=7, orders_per_day=150, seed=42, envelope="plain"
            )
            run_simulation(config, platform.event_log, home / "truth", parallel=False)
            LakeIngestor(platform.event_log, open_catalog(None, None, home), silver=False).run_once()
            features = build_features(settings)
            features.apply()
            started = time.perf_counter()
            features.materialize()
            facts["materialize_s"] = time.perf_counter() - started
            training = build_training(settings, platform.event_log, features=features)
            for use_case in ("fraud", "eta"):
                started = time.perf_counter()
                report = training.train(use_case, seed=42)
                facts[f"train_{use_case}_s"] = time.perf_counter() - started
                facts[f"{use_case}_version"] = report.version
                facts[f"{use_case}_truth_ratio"] = report.truth_ratio
                training.tracking.set_alias(use_case, report.version, CHAMPION)
            # Training alone, on frames already retrieved (what --tune repeats per trial).
            frame = features.training_frame("fraud")
            from shopops.ml.training.model import time_split
            from shopops.ml.training.usecase import get_use_case

            uc = get_use_case("fraud")
            split = time_split(frame.frame, 0.3)
            started = time.perf_counter()
            uc.fit(
                split.train, frame.features, frame.label, {**uc.default_params(), "seed": 1, "num_threads": 2}
            )
            facts["fit_fraud_s"] = time.perf_counter() - started
            facts["fraud_rows"] = len(split.train)
            features.close()
            marker.write_text(json.dumps(facts))
        facts = json.loads(marker.read_text())
        key = platform.governance.create_key(
            kind="service", name=f"bench-{int(time.time())}", roles=["checkout"], home_region="vn"
        )
        facts["key"] = key.token
    finally:
        platform.close()
    return facts


def request_bodies(home: Path, n: int = 200) -> list[dict[str, Any]]:
    import pandas as pd

    orders = pd.read_parquet(home / "truth" / "fraud_truth.parquet").tail(n)
    return [
        {
            "customer_id": r.customer_id,
            "device_id": r.device_id,
            "card_fingerprint": r.card_fingerprint,
            "order_id": r.order_id,
            "event_timestamp": int(r.created_at_ms),
        }
        for r in orders.itertuples()
    ]


# --- servers --------------------------------------------------------------------------------------


BARE_APP = """
import os
import lightgbm as lgb
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

booster = lgb.Booster(model_file=os.environ["BOOSTER"])
app = FastAPI()

class Body(BaseModel):
    features: list[float]

@app.post("/predict")
async def predict(body: Body) -> dict:
    return {"score": float(booster.predict(np.asarray([body.features]), num_threads=1)[0])}
"""

SHOPOPS_APP = """
import uvicorn
from shopops.api.app import create_app
from shopops.core.logging import configure_logging
from shopops.core.settings import load_settings

configure_logging("WARNING")
uvicorn.run(create_app(load_settings()), host="127.0.0.1", port=int(__import__("sys").argv[1]),
            log_level="warning", access_log=False)
"""


class Server:
    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port = name, port
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, url: str, body: Any, headers: dict[str, str], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.flush()
                raise RuntimeError(f"{self.name} exited: {Path(self._log.name).read_text()[-2000:]}")
            try:
                r = httpx.post(url, json=body, headers=headers, timeout=5)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not answer at {url}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()


def lua_script(path: Path, bodies: list[str], headers: dict[str, str]) -> Path:
    lines = ["wrk.method = 'POST'", "wrk.headers['Content-Type'] = 'application/json'"]
    lines += [f"wrk.headers['{k}'] = '{v}'" for k, v in headers.items()]
    lines.append("local bodies = {")
    lines += [f"  [==[{b}]==]," for b in bodies]
    lines += [
        "}",
        "local i = 0",
        "request = function()",
        "  i = i % #bodies + 1",
        "  return wrk.format(nil, nil, nil, bodies[i])",
        "end",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _seconds(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def in_process(home: Path, bodies: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Wall time of one scoring call and of one online read in this process (no HTTP)."""
    from shopops.bootstrap import build_features, build_serving
    from shopops.core.settings import Settings

    settings = Settings(home=home)
    entities = [{k: str(v) for k, v in b.items()} for b in bodies]
    out: dict[str, Any] = {"load_before": os.getloadavg()[0]}
    direct, feast = build_features(settings), build_features(settings)
    feast.direct_reads = False
    serving = build_serving(settings, direct).start()
    try:
        for name, call, count in (
            ("score", lambda e: serving.score("fraud", e), n),
            ("features_direct", lambda e: direct.online_features("fraud", e), n),
            ("features_feast", lambda e: feast.online_features("fraud", e), max(1, n // 4)),
        ):
            for e in entities:  # warm: first reads open connections, caches fill
                call(e)
            samples = []
            for i in range(count):
                started = time.perf_counter()
                call(entities[i % len(entities)])
                samples.append(time.perf_counter() - started)
            out[name] = _percentiles(samples)
    finally:
        serving.close()
        direct.close()
        feast.close()
    out["load_after"] = os.getloadavg()[0]
    return out


def _combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's rounds: mean requests/s, the median round's p50, the worst round's p99."""
    p50s = sorted(r["p50_ms"] for r in rounds)
    return {
        "rps": sum(r["rps"] for r in rounds) / len(rounds),
        "rounds": [r["rps"] for r in rounds],
        "p50_ms": p50s[len(p50s) // 2],
        "p99_ms": max(r["p99_ms"] for r in rounds),
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "load": [r["load"][0] for r in rounds],
    }


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    console.print(f"[dim]$ {' '.join(cmd)}[/]")
    load_before = os.getloadavg()[0]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    console.print(f"[dim]{out.strip()}[/]")
    return {
        "rps": rps,
        "p50_ms": p50 * 1000,
        "p99_ms": p99 * 1000,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "load": [load_before, os.getloadavg()[0]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", type=Path, help="Data directory to build or reuse (default: a temporary one)"
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server, interleaved")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--in-process", type=int, default=3000, help="scoring calls timed in-process (0: skip)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    temp = None
    home = args.home
    if home is None:
        temp = tempfile.mkdtemp(prefix="bench-serving-")
        home = Path(temp)
    home = home.resolve()
    os.environ["SHOPOPS_HOME"] = str(home)
    from shopops.core.logging import configure_logging

    configure_logging("WARNING")
    console.print(f"world in {home}")
    facts = build_world(home)
    bodies = request_bodies(home)
    inproc = in_process(home, bodies, args.in_process) if args.in_process else None
    from shopops.ml.serving.loader import load_model
    from shopops.ml.tracking.service import Tracking, default_uris

    uri, artifacts = default_uris(home, None, None)
    model = load_model(Tracking(uri, artifacts), "fraud", facts["fraud_version"], home / "ml" / "cache")
    booster_file = model.path / "shopops" / "boosters" / "score.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPOPS_")}
    env.update(
        {
            "SHOPOPS_HOME": str(home),
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "SHOPOPS_ML__SERVING__RELOAD_INTERVAL_S": "60",
            # `mlflow models serve` starts `uvicorn` from the PATH: this interpreter's.
            "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    work = Path(tempfile.mkdtemp(prefix="bench-serving-work-"))
    results: dict[str, Any] = {"facts": {k: v for k, v in facts.items() if k != "key"}}
    row = [model.default_map[f] for f in model.features]
    # Every server is started (one process each) before any is measured; then the rounds go
    # shopops, bare, mlflow, shopops, ... so that the shared machine's load, which drifts over
    # minutes, weighs on each server alike. Only one server is under load at a time.
    servers: dict[str, tuple[Server, str, Path]] = {}
    try:
        (work / "shopops_app.py").write_text(SHOPOPS_APP)
        port = free_port()
        server = Server(
            "shopops", [PY, str(work / "shopops_app.py"), str(port)], port, env, work / "shopops.log"
        )
        servers["shopops"] = (server, f"http://127.0.0.1:{port}/v1/score/fraud", work / "shopops.lua")
        headers = {"Authorization": f"Bearer {facts['key']}"}
        server.wait(servers["shopops"][1], bodies[0], headers)
        lua_script(work / "shopops.lua", [json.dumps(b) for b in bodies], headers)

        (work / "bare_app.py").write_text(BARE_APP)
        port = free_port()
        cmd = [PY, "-m", "uvicorn", "--app-dir", str(work), "bare_app:app", "--port", str(port)]
        cmd += ["--log-level", "warning", "--no-access-log"]
        server = Server("bare", cmd, port, {**env, "BOOSTER": str(booster_file)}, work / "bare.log")
        servers["bare"] = (server, f"http://127.0.0.1:{port}/predict", work / "bare.lua")
        body: dict[str, Any] = {"features": row}
        server.wait(servers["bare"][1], body, {})
        lua_script(work / "bare.lua", [json.dumps(body)], {})

        if not args.skip_mlflow:
            port = free_port()
            mlflow_bin = str(Path(PY).with_name("mlflow"))
            model_uri = f"models:/fraud/{facts['fraud_version']}"
            cmd = [mlflow_bin, "models", "serve", "-m", model_uri, "-p", str(port), "-h", "127.0.0.1"]
            cmd += ["--env-manager", "local"]
            server = Server("mlflow", cmd, port, env, work / "mlflow.log")
            servers["mlflow"] = (server, f"http://127.0.0.1:{port}/invocations", work / "mlflow.lua")
            body = {"dataframe_split": {"columns": model.features, "data": [row]}}
            server.wait(servers["mlflow"][1], body, {}, timeout_s=180)
            lua_script(work / "mlflow.lua", [json.dumps(body)], {})

        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (_, url, script) in servers.items():
                rounds[name].append(run_wrk(url, script, args))
        for name, measured in rounds.items():
            results[name] = _combine(measured)
    finally:
        for server, _, _ in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    table = Table(
        "server",
        "requests/s",
        "per round",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "load avg per round",
        title=f"fraud scoring, {args.rounds} interleaved rounds of "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s",
    )
    for name in ("shopops", "bare", "mlflow"):
        if name in results:
            r = results[name]
            table.add_row(
                name,
                f"{r['rps']:,.0f}",
                " ".join(f"{x:,.0f}" for x in r["rounds"]),
                f"{r['p50_ms']:.2f}",
                f"{r['p99_ms']:.2f}",
                str(r["non_2xx"]),
                " ".join(f"{x:.1f}" for x in r["load"]),
            )
    console.print(table)
    if inproc is not None:
        results["in_process"] = inproc
        console.print(
            f"in-process (load {inproc['load_before']:.1f}-{inproc['load_after']:.1f}): "
            f"ServingService.score p50 {inproc['score']['p50_ms']:.3f} ms, "
            f"p99 {inproc['score']['p99_ms']:.3f} ms; "
            f"online read direct p50 {inproc['features_direct']['p50_ms']:.3f} ms "
            f"(p99 {inproc['features_direct']['p99_ms']:.3f}), through Feast p50 "
            f"{inproc['features_feast']['p50_ms']:.3f} ms (p99 {inproc['features_feast']['p99_ms']:.3f})"
        )
    s = results["shopops"]["rps"]
    console.print(f"shopops / bare = {s / results['bare']['rps']:.2f} (target >= 0.5)")
    if "mlflow" in results:
        console.print(f"shopops / mlflow models serve = {s / results['mlflow']['rps']:.1f} (target >= 10)")
    f = results["facts"]
    if "train_fraud_s" in f:
        console.print(
            "training (feature frames retrieved, fit, scored, logged, registered): "
            f"fraud {f['train_fraud_s']:.1f} s, eta {f['train_eta_s']:.1f} s; "
            f"fit alone: fraud {f['fit_fraud_s']:.2f} s on {f['fraud_rows']:,} rows; "
            f"materialize {f['materialize_s']:.1f} s"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
