"""API-key verification is cached per key id for ``governance.key_cache_ttl_s``: a key revoked in
this process stops at once, one revoked by another process within that time."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopops.bootstrap import build_governance
from shopops.core.settings import Settings
from shopops.governance.errors import AuthenticationError


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_revoked_by_another_process_stops_within_the_cache_ttl(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, governance={"key_cache_ttl_s": 5.0})
    admin = build_governance(settings)  # e.g. `shopops auth revoke` in another process
    server = build_governance(settings)  # a running server: its own key cache
    clock = FakeMonotonic()
    server.monotonic = clock
    try:
        issued = admin.create_key(kind="service", name="checkout", roles=["checkout"], home_region="vn")
        assert server.authenticate(issued.token).name == "checkout"
        admin.revoke_key(issued.record.key_id)
        clock.now += 4.9  # within the TTL, the server still holds the active record
        assert server.authenticate(issued.token).name == "checkout"
        clock.now += 0.2  # past the TTL: the store is asked again
        with pytest.raises(AuthenticationError, match=f"API key {issued.record.key_id} was revoked"):
            server.authenticate(issued.token)
    finally:
        admin.close()
        server.close()


def test_the_cache_never_accepts_a_wrong_secret_for_a_cached_key_id(tmp_path: Path) -> None:
    governance = build_governance(Settings(home=tmp_path))
    try:
        issued = governance.create_key(kind="user", name="ana", roles=["support"], home_region="vn")
        assert governance.authenticate(issued.token).name == "ana"  # the record is cached now
        forged = issued.token[:-4] + ("AAAA" if not issued.token.endswith("AAAA") else "BBBB")
        with pytest.raises(AuthenticationError, match="unknown API key"):
            governance.authenticate(forged)
        governance.revoke_key(issued.record.key_id)  # in this process: at once
        with pytest.raises(AuthenticationError, match="was revoked"):
            governance.authenticate(issued.token)
    finally:
        governance.close()
