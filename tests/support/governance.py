"""API keys for tests: the routes need credentials; tests create keys the way an admin does."""

from __future__ import annotations

from pathlib import Path

from shopops.bootstrap import build_governance
from shopops.core.settings import Settings
from shopops.governance.service import GovernanceService


def open_governance(home: Path) -> GovernanceService:
    """The governance service of a test data directory (the repository's policies)."""
    return build_governance(Settings(home=home))


def key_for(governance: GovernanceService, *roles: str, name: str | None = None, region: str = "vn") -> str:
    """A fresh API key with ``roles`` (a user named after them unless ``name`` is given)."""
    issued = governance.create_key(
        kind="user", name=name or "-".join(roles).replace("_", "-"), roles=roles, home_region=region
    )
    return issued.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_headers(governance: GovernanceService) -> dict[str, str]:
    """``Authorization`` headers of a new admin key."""
    return bearer(key_for(governance, "admin", name="test-admin"))
