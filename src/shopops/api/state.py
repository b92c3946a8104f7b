"""Services an app builds on first use and keeps on ``app.state`` (one per app)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request

T = TypeVar("T")

# Re-entrant: building one service may ask for another (serving builds on the feature store).
_BUILD_LOCK = threading.RLock()


def app_service(request: Request, name: str, build: Callable[[Any], T]) -> T:
    """The app's ``name`` service: ``build(app.state)`` the first time, from then on the same one.

    Built lazily because most processes never need most services (importing MLflow or Feast
    costs seconds), and under a lock so that concurrent first requests build it once.
    """
    state = request.app.state
    service: T | None = getattr(state, name, None)
    if service is None:
        with _BUILD_LOCK:
            service = getattr(state, name, None)
            if service is None:
                service = build(state)
                setattr(state, name, service)
    return service
