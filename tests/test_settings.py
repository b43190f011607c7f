"""Settings from a TOML file and AICN_* variables; the CLI's migrate and export-schema."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from aicn.settings import CenterConfig, RayConfig, Settings

CONFIG = """
data_dir = "{data}"
port = 9123
currency = "EUR"

[[centers]]
name = "gpu-farm"
kind = "LOCAL"
deadline_seconds = 2.5
[[centers.devices]]
accelerator = "nvidia-a100-80gb"
count = 4
price_per_unit_hour = "1.25"

[[centers]]
name = "hpc"
kind = "SLURM"
[centers.slurm]
url = "http://127.0.0.1:6820"
token_env = "MY_SLURM_TOKEN"
gres_models = {{ a100 = "nvidia-a100-80gb" }}
"""


def test_defaults_serve_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AICN_CONFIG", raising=False)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert [(center.name, center.kind) for center in settings.centers] == [("local", "LOCAL")]
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///") and settings.resolved_database_url.endswith(
        "aicn-data/aicn.db"
    )


def test_a_toml_file_and_environment_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(data=tmp_path / "data"))
    monkeypatch.setenv("AICN_CONFIG", str(config))
    monkeypatch.setenv("AICN_PORT", "9200")
    monkeypatch.setenv("MY_SLURM_TOKEN", "secret-token")
    settings = Settings()
    assert settings.port == 9200  # the environment wins over the file
    assert settings.currency == "EUR"
    farm, hpc = settings.centers
    assert farm.deadline_seconds == 2.5 and farm.devices[0].price_per_unit_hour == Decimal("1.25")
    assert hpc.kind == "SLURM" and hpc.slurm is not None
    assert hpc.slurm.resolved_token() == "secret-token"
    assert hpc.slurm.gres_models == {"a100": "nvidia-a100-80gb"}


def test_bad_configuration_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[centers]]\nname = "Not A Slug!"\n')
    monkeypatch.setenv("AICN_CONFIG", str(config))
    with pytest.raises(ValueError):
        Settings()


def test_the_cli_migrates_and_exports_the_schema(tmp_path: Path) -> None:
    env = {"AICN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "AICN_CONFIG": str(tmp_path / "none.toml")}
    migrated = subprocess.run(
        [sys.executable, "-m", "aicn.cli", "migrate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "data" / "aicn.db").exists()
    exported = subprocess.run(
        [sys.executable, "-m", "aicn.cli", "export-schema", "-o", "-"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert exported.returncode == 0 and "type Query" in exported.stdout


def test_unknown_settings_are_named_not_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('prot = 9000\n[limits]\nmax_cots = 5\n[[centers]]\nname = "local"\ndispaly_name = "x"\n')
    monkeypatch.setenv("AICN_CONFIG", str(config))
    with pytest.raises(ValueError) as raised:
        Settings()
    named = {".".join(map(str, e["loc"])) for e in raised.value.errors() if e["type"] == "extra_forbidden"}  # type: ignore[attr-defined]
    assert named == {"prot", "limits.max_cots", "centers.0.dispaly_name"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("prot = 9000\n", "prot: unknown setting"),
        ("[limits]\nmax_cost = 5\nbucket_size = 1\n", "limits: Value error"),
        ("port = \n", "is not valid TOML"),
        ('[[centers]]\nname = "local"\n[[centers.devices]]\naccelerator = "cpu-core"\ncount = "two"\n', "centers.0.devices.0.count:"),
    ],
)
def test_a_configuration_error_is_one_clear_line_and_no_token_is_printed(tmp_path: Path, text: str, named: str) -> None:
    (tmp_path / "aicn.toml").write_text(text)
    env = {"AICN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    for command in (["serve", "--port", "0"], ["migrate"], ["tokens", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "aicn.cli", *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aicn: configuration: ") and named in lines[0], (command, done.stderr)
        assert "Traceback" not in done.stderr and "aicn_" not in done.stdout + done.stderr
    assert not (tmp_path / "data").exists()


def test_every_subcommand_explains_its_options() -> None:
    import argparse

    from aicn.cli import build_parser

    def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
        found = [parser]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found.extend(parsers(child))
        return found

    unexplained = [
        f"{parser.prog} {action.dest}"
        for parser in parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction) and not action.help
    ]
    assert unexplained == []


def test_a_start_on_a_busy_port_fails_before_it_makes_an_admin_token(tmp_path: Path) -> None:
    import socket

    env = {"AICN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "AICN_CONFIG": str(tmp_path / "none.toml")}
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "aicn.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert done.stderr.strip() == f"aicn: cannot listen on 127.0.0.1:{port}: Address already in use (set `port`, or --port)"
    assert "aicn_" not in done.stdout + done.stderr and not (tmp_path / "data").exists()  # no token made, none lost


def test_a_job_user_the_gateway_cannot_use_fails_the_start_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "aicn.toml").write_text('[[centers]]\nname = "local"\nkind = "LOCAL"\n[centers.local]\nrun_as = "root"\n')
    env = {"AICN_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "aicn.cli", "serve", "--port", "0"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "aicn: configuration: centers.local.run_as: 'root' is the gateway's own user; jobs need a user of their own"
    ]
    assert "aicn_" not in done.stdout + done.stderr  # no admin token made: the check runs before anything is created


def test_a_peer_center_needs_its_section_and_a_token_and_hides_it(tmp_path: Path) -> None:
    from aicn.runtime import build_connector
    from aicn.settings import PeerConfig
    from connectors.peer.connector import PeerConnector

    with pytest.raises(ValidationError, match=r"centers\.peer"):
        CenterConfig(name="p", kind="PEER")
    with pytest.raises(ValidationError, match="token"):
        PeerConfig(url="http://127.0.0.1:8001/graphql")
    with pytest.raises(ValidationError, match="extra"):
        PeerConfig(url="http://127.0.0.1:8001/graphql", token="x" * 30, tokn="typo")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="6 decimal places"):
        PeerConfig(url="http://127.0.0.1:8001/graphql", token="x" * 30, markup="0.0000001")  # type: ignore[arg-type]
    token_file = tmp_path / "token"
    token_file.write_text("aicn_peer-file-token-0123456789abcdef\n")
    config = CenterConfig(name="p", kind="PEER", peer=PeerConfig(url="http://127.0.0.1:8001/graphql", token_file=str(token_file)))
    inline = PeerConfig(url="http://127.0.0.1:8001/graphql", token="aicn_inline-peer-token-0123456789")  # type: ignore[arg-type]
    assert "inline-peer-token" not in repr(inline) and "inline-peer-token" not in str(inline.model_dump())
    connector = build_connector(config, Settings(data_dir=tmp_path), "gw-test")
    assert isinstance(connector, PeerConnector) and connector.kind == "PEER" and connector.markup == 0
    assert "peer-file-token" not in repr(connector) and "peer-file-token" not in repr(connector.graph)


def test_ray_serve_never_listens_on_the_gateways_port(tmp_path: Path) -> None:
    clash = CenterConfig(name="ray", kind="RAY", ray=RayConfig(serve_port=8000))
    with pytest.raises(ValidationError, match="serve_port 8000 is the gateway's own port"):
        Settings(data_dir=tmp_path, centers=[clash])
    assert Settings(data_dir=tmp_path, port=8001, centers=[clash]).centers[0].ray == RayConfig(serve_port=8000)
    assert RayConfig().serve_port == 8270 and RayConfig().serve_host == "127.0.0.1"
