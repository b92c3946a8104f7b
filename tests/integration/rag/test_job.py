"""The scheduled ingestion of `shopops up`: at start, then every interval, changed files only."""

from __future__ import annotations

import time
from pathlib import Path

from tests.integration.rag.conftest import settings_for

from shopops.bootstrap import build_platform, build_rag_job
from shopops.rag.job import RagIngestJob
from shopops.rag.service import RagService


def _wait(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_job_ingests_at_start_and_picks_up_changes(small: RagService, corpus: Path) -> None:
    job = RagIngestJob(small, corpus, interval_s=0.3).start()
    try:
        _wait(lambda: job.runs >= 1)
        assert job.last_report is not None
        assert job.last_report.added > 0
        path = corpus / "policies" / "returns.md"
        path.write_text(path.read_text().replace("within 7 days", "within 30 days"))
        _wait(lambda: "30 days" in small.search("return window days", 1, mode="sparse")[0].text)
        assert job.last_error is None
    finally:
        job.stop()


def test_builder_follows_the_settings(tmp_path: Path) -> None:
    platform = build_platform(settings_for(tmp_path, ingest_on_start=False, interval_s=0))
    try:
        assert build_rag_job(platform) is None
    finally:
        platform.close()
    platform = build_platform(settings_for(tmp_path, interval_s=5))
    try:
        job = build_rag_job(platform)
        assert job is not None
        assert job.interval_s == 5
        assert job.path.name == "knowledge"
    finally:
        platform.close()
