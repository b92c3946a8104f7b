from pathlib import Path

import pytest

from shopops.core.errors import ConfigError
from shopops.core.settings import load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("SHOPOPS_HOME", "SHOPOPS_CONFIG", "SHOPOPS_EVENTS__TYPE", "SHOPOPS_API__PORT"):
        monkeypatch.delenv(var, raising=False)


def test_defaults_are_the_embedded_profile(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.events.type == "sqlite"
    assert settings.home == tmp_path / ".shopops"
    assert settings.api.port == 8000


def test_environment_nests_with_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPOPS_EVENTS__TYPE", "kafka")
    monkeypatch.setenv("SHOPOPS_EVENTS__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv("SHOPOPS_API__PORT", "9001")
    settings = load_settings()
    assert settings.events.type == "kafka"
    assert settings.events.options() == {"bootstrap_servers": "127.0.0.1:9092"}
    assert settings.api.port == 9001


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "shopops.toml").write_text('[api]\nport = 8100\nhost = "0.0.0.0"\n[simulator]\ndays = 3\n')
    monkeypatch.setenv("SHOPOPS_API__PORT", "8200")
    settings = load_settings()
    assert settings.api.host == "0.0.0.0"
    assert settings.api.port == 8200
    assert settings.simulator.days == 3


def test_invalid_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPOPS_API__PORT", "99999")
    with pytest.raises(ConfigError, match=r"api\.port"):
        load_settings()


def test_unknown_setting_in_toml_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "shopops.toml").write_text("[api]\nprot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings()


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOPOPS_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "shopops.toml").write_text("[api\nport = 1\n")
    with pytest.raises(ConfigError, match="invalid settings"):
        load_settings()
