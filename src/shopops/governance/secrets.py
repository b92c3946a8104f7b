"""Resolving secret settings: an explicit setting first, then the configured secret provider.

Outside the demo profile an empty or well-known default secret stops start-up; in the demo
profile a missing one is generated once and kept (mode 0600) in the data directory.
"""

from __future__ import annotations

import os
import secrets as _random
from pathlib import Path

from pydantic import BaseModel, SecretStr

from shopops.core.errors import ConfigError
from shopops.governance.port import SecretProvider

#: Values that are never a real secret.
WEAK_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "demo", "shopops", "default"})
MIN_LENGTH = 16


def weak_secret_settings(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of every ``SecretStr`` setting of ``model`` that is empty or a known default."""
    out: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, SecretStr):
            if value.get_secret_value().strip().lower() in WEAK_SECRETS:
                out.append(path)
        elif isinstance(value, BaseModel):
            out.extend(weak_secret_settings(value, f"{path}."))
    return out


def resolve_secret(
    name: str,
    setting: str,
    explicit: SecretStr | None,
    provider: SecretProvider,
    *,
    demo: bool,
    home: Path,
) -> SecretStr:
    """The secret ``name``: ``explicit`` if given, else from ``provider``; generated in the demo."""
    value = explicit if explicit is not None else provider.get(name)
    text = "" if value is None else value.get_secret_value()
    if text.strip().lower() not in WEAK_SECRETS and len(text) >= MIN_LENGTH:
        return SecretStr(text)
    if not demo:
        problem = "is not set" if value is None else "is empty, too short or a well-known default"
        raise ConfigError(
            f"secret {setting} {problem}: the production profile refuses to start without a real secret",
            hint=f"set {setting} (env SHOPOPS_{setting.upper().replace('.', '__')}) or provide it as "
            f"{provider.describe(name)}; at least {MIN_LENGTH} random characters",
        )
    path = home / f"{name}.secret"
    if path.is_file():
        return SecretStr(path.read_text().strip())
    generated = _random.token_urlsafe(32)
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of the demo generated it first
        return SecretStr(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(generated)
    return SecretStr(generated)
