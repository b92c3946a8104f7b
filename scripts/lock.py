"""Regenerate requirements.lock: the exact versions installed in .venv, plus reference pins.

The lock is a pip *constraints* file: it fixes versions without installing anything by itself,
so it may also pin packages that later capabilities add (from the known-good set of the stack).
Usage: ``.venv/bin/python scripts/lock.py [reference-versions.txt]``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pins(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-e")) or "==" not in line:
            continue
        name, version = line.split("==", 1)
        # A local build label (torch's "+cpu") is not requestable by pip: keep the public version.
        out[re.sub(r"[-_.]+", "-", name).lower()] = version.split("+", 1)[0]
    return out


def main() -> None:
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pins = _pins(frozen)
    pins.pop("shopops", None)
    if len(sys.argv) > 1:
        for name, version in _pins(Path(sys.argv[1]).read_text().splitlines()).items():
            pins.setdefault(name, version)
    header = [
        "# pip constraints for shopops: `pip install -c requirements.lock -e .[dev]`.",
        "# Regenerate with `.venv/bin/python scripts/lock.py` after changing dependencies.",
    ]
    body = [f"{name}=={version}" for name, version in sorted(pins.items())]
    (ROOT / "requirements.lock").write_text("\n".join(header + body) + "\n")
    print(f"requirements.lock: {len(body)} pins")


if __name__ == "__main__":
    main()
