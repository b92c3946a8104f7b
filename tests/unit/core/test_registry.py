from pathlib import Path

import pytest

from shopops.core.errors import ConfigError
from shopops.core.registry import BackendConfig, BackendRegistry, BackendSelection
from shopops.events.backends import EVENT_LOGS


class FakeBackend:
    class Config(BackendConfig):
        size: int = 1
        name: str = "x"

    def __init__(self, config: Config, *, home: Path) -> None:
        self.config = config
        self.home = home


REGISTRY: BackendRegistry[FakeBackend] = BackendRegistry("test port", {"fake": f"{__name__}:FakeBackend"})


def test_type_string_selects_the_class_and_validates_its_options(tmp_path: Path) -> None:
    backend = REGISTRY.create(BackendSelection(type="fake", size=3), home=tmp_path)
    assert isinstance(backend, FakeBackend)
    assert backend.config.size == 3
    assert backend.home == tmp_path


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        EVENT_LOGS.resolve("rabbit")
    assert "unknown event log backend type 'rabbit'" in info.value.message
    assert info.value.hint == "known types: kafka, sqlite"


def test_unknown_option_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sizee") as info:
        REGISTRY.create(BackendSelection(type="fake", sizee=3), home=tmp_path)
    assert "valid options: size, name" in str(info.value.hint)


def test_bad_option_value_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"size: .*integer"):
        REGISTRY.create(BackendSelection(type="fake", size="many"), home=tmp_path)


def test_unimportable_backend_is_a_config_error() -> None:
    registry: BackendRegistry[object] = BackendRegistry("x", {"ghost": "shopops.no_such_module:Ghost"})
    with pytest.raises(ConfigError, match="cannot be loaded"):
        registry.resolve("ghost")
