"""Secrets from the environment and from files (Docker/Kubernetes secrets under /run/secrets)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr

from shopops.core.registry import BackendConfig
from shopops.governance.errors import SecretError
from shopops.governance.port import SecretProvider

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SecretError(f"invalid secret name {name!r}", hint="use letters, digits, '.', '_' and '-'")
    return name


class EnvSecrets(SecretProvider):
    """``name`` is read from the variable ``<prefix><NAME>``, e.g. ``SHOPOPS_SECRET_SESSION_SECRET``."""

    class Config(BackendConfig):
        prefix: str = "SHOPOPS_SECRET_"

    def __init__(self, config: Config) -> None:
        self.config = config

    def _var(self, name: str) -> str:
        return self.config.prefix + check_name(name).upper().replace("-", "_").replace(".", "_")

    def get(self, name: str) -> SecretStr | None:
        value = os.environ.get(self._var(name))
        return None if value is None else SecretStr(value)

    def describe(self, name: str) -> str:
        return f"environment variable {self._var(name)}"


class FileSecrets(SecretProvider):
    """``name`` is the content of the file ``<dir>/<name>`` (one trailing newline dropped)."""

    class Config(BackendConfig):
        dir: Path = Path("/run/secrets")

    def __init__(self, config: Config) -> None:
        self.config = config

    def get(self, name: str) -> SecretStr | None:
        path = self.config.dir / check_name(name)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc}", hint="check its permissions") from exc
        return SecretStr(text[:-1] if text.endswith("\n") else text)

    def describe(self, name: str) -> str:
        return f"file {self.config.dir / name}"
