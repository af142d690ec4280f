"""Settings precedence: flags > VECRAFT_* environment > TOML file > defaults."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field

from vecraft.cli import UpSettings
from vecraft.shared.common.config import (
    ServiceSettings,
    add_settings_arguments,
    load_settings,
    settings_from_namespace,
)

pytestmark = pytest.mark.unit


class DemoSettings(ServiceSettings):
    replicas: int = Field(1, description="replicas")
    backend: Literal["sqlite", "etcd"] = Field("sqlite", description="backend")
    fsync: bool = Field(True, description="fsync")
    peers: list[str] = Field(default_factory=list, description="peers")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG", "REPLICAS", "BACKEND", "FSYNC", "PEERS", "GRPC_PORT", "HOST", "SHARDS",
                 "DATA_DIR", "HTTP_PORT"):
        monkeypatch.delenv(f"VECRAFT_{name}", raising=False)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vecraft.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings(DemoSettings, [])
    assert (s.replicas, s.backend, s.fsync, s.peers, s.grpc_port) == (1, "sqlite", True, [], 0)


def test_each_layer_wins_over_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _toml(tmp_path, 'replicas = 2\nbackend = "etcd"\ngrpc_port = 7000\nhost = "10.0.0.1"\n'
                             "[demo]\nreplicas = 3\n")
    monkeypatch.setenv("VECRAFT_GRPC_PORT", "7100")
    monkeypatch.setenv("VECRAFT_HOST", "10.0.0.2")
    s = load_settings(DemoSettings, ["--config", str(config), "--host", "10.0.0.3"], section="demo")
    assert s.replicas == 3          # the service's table beats top-level keys
    assert s.backend == "etcd"      # file beats default
    assert s.grpc_port == 7100      # environment beats file
    assert s.host == "10.0.0.3"     # flag beats environment
    # VECRAFT_CONFIG names the file when --config is absent.
    monkeypatch.setenv("VECRAFT_CONFIG", str(config))
    assert load_settings(DemoSettings, [], section="demo").replicas == 3


def test_flag_types(capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings(DemoSettings, ["--no-fsync", "--peers", "a:1", "b:2", "--replicas", "5"])
    assert (s.fsync, s.peers, s.replicas) == (False, ["a:1", "b:2"], 5)
    with pytest.raises(SystemExit) as info:
        load_settings(DemoSettings, ["--backend", "postgres"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_up_settings_leave_unset_parameters_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vecraft up` keeps "not given" as None so the stored plan can fill it in."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--unrelated")
    add_settings_arguments(parser, UpSettings)
    config = _toml(tmp_path, "shards = 9\n[up]\nshards = 5\nhttp_port = 9000\n")
    monkeypatch.setenv("VECRAFT_HTTP_PORT", "9100")
    ns = parser.parse_args(["--config", str(config), "--replicas", "2", "--unrelated", "x"])
    s = settings_from_namespace(UpSettings, ns, section="up")
    request = s.plan_request()
    assert request["shards"] == 5 and request["http_port"] == 9100 and request["replicas"] == 2
    assert request["grpc_port"] is None and request["data_partitions"] is None
    assert s.data_dir == Path("./vecraft-data") and s.cluster is None and request["cluster"] is None


def test_other_tables_and_unknown_keys_stay_out(tmp_path: Path) -> None:
    """One file serves every program: another program's table and keys no field has are not errors."""
    config = _toml(tmp_path, 'replicas = 2\nno_such_setting = 1\n[journal]\nreplicas = 7\nbackend = "x"\n')
    s = load_settings(DemoSettings, ["--config", str(config)], section="demo")
    assert (s.replicas, s.backend) == (2, "sqlite")


def test_a_named_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.toml"):
        load_settings(DemoSettings, ["--config", str(tmp_path / "missing.toml")], section="demo")
