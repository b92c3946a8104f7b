"""`shopops schemas …` through real subprocesses: watch, list, check, diff, register, replay."""

from __future__ import annotations

from pathlib import Path

import orjson
from tests.e2e.helpers import run_cli

SHIPMENTS = "vn.logistics.shipments-value"


def test_the_drift_workflow_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    quiet = {"SHOPOPS_LOGGING__LEVEL": "WARNING"}
    done = run_cli(home, "simulate", "--regions", "vn", "--days", "5", "--orders-per-day", "15", **quiet)
    assert done.returncode == 0, done.stderr

    watched = run_cli(home, "schemas", "watch", **quiet)
    assert watched.returncode == 0, watched.stderr
    assert "quarantined" in watched.stdout
    assert f"incompatible change on {SHIPMENTS}" in watched.stdout

    listed = run_cli(home, "schemas", "list", "--prefix", "vn.logistics", "--json")
    rows = {r["subject"]: r for r in orjson.loads(listed.stdout)}
    assert rows[SHIPMENTS]["version"] == 1
    assert rows[SHIPMENTS]["compatibility"] == "BACKWARD"

    status = run_cli(home, "schemas", "check", SHIPMENTS)
    assert status.returncode == 0, status.stderr
    assert "records quarantined" in status.stdout
    assert "TYPE_CHANGED" in status.stdout

    diff = run_cli(home, "schemas", "diff", SHIPMENTS, "--quarantined")
    assert diff.returncode == 0, diff.stderr
    assert '"type": "number"' in diff.stdout
    assert '"type": "string"' in diff.stdout
    assert "BACKWARD no" in diff.stdout

    # A CI step: the candidate migration is tested before it ships, and refused with the reason.
    candidate = tmp_path / "shipments.json"
    candidate.write_text(
        '{"type":"object","properties":{"shipment_id":{"type":"string"}},"additionalProperties":false}'
    )
    refused = run_cli(home, "schemas", "check", SHIPMENTS, str(candidate), "--type", "JSON")
    assert refused.returncode == 4
    assert "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL" in refused.stdout
    rejected = run_cli(home, "schemas", "register", SHIPMENTS, str(candidate), "--type", "JSON")
    assert rejected.returncode == 4
    assert "refused" in rejected.stderr

    still = run_cli(home, "schemas", "replay", "--subject", SHIPMENTS)
    assert still.returncode == 4
    assert "still refused" in still.stdout

    fixed = run_cli(home, "schemas", "compatibility", SHIPMENTS, "--set", "NONE")
    assert "NONE" in fixed.stdout
    replayed = run_cli(home, "schemas", "replay", "--subject", SHIPMENTS)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "0 still refused" in replayed.stdout
    assert "vn.logistics.shipments:" in replayed.stdout

    bad = run_cli(home, "schemas", "diff", "no-such-subject-value")
    assert bad.returncode == 3
    assert "not found" in bad.stderr
