"""The drift watch's Prometheus alert rules load and fire as intended (promtool's own checks)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is needed to check the alert rules: install the Debian package prometheus "
            "(`apt-get install --no-install-recommends prometheus`)",
            pytrace=False,
        )
    return found


def test_the_rules_are_valid() -> None:
    done = subprocess.run(
        [_promtool(), "check", "rules", str(RULES / "schemas.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 rules found" in done.stdout


def test_the_rules_fire_on_drift_and_quarantine() -> None:
    done = subprocess.run(
        [_promtool(), "test", "rules", "schemas_test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
