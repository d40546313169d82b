"""The deployment files stay true to the code: each systemd unit's ``ExecStart`` runs with ``--help`` (so a renamed
command or flag breaks the build), every unit restarts on failure and reads its secrets from an environment file,
and the production config example passes ``config check --production``.
"""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
INSTALLED_BIN = "/opt/experimenthub/venv/bin/"  # where docs/deploy.md installs the venv


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def test_there_are_units_for_every_process() -> None:
    assert {p.name for p in UNITS} >= {
        "experimenthub-api.service",
        "experimenthub-stream@.service",
        "experimenthub-worker.service",
        "mlflow.service",
    }


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_exec_start_accepts_its_flags(path: Path, tmp_path: Path) -> None:
    service = unit(path)["Service"]
    argv = shlex.split(service["ExecStart"].replace("%i", "pump-1"))
    assert argv[0].startswith(INSTALLED_BIN), argv[0]
    program = Path(sys.executable).with_name(argv[0].removeprefix(INSTALLED_BIN))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EXPERIMENTHUB_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(program), *argv[1:], "--help"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, f"{path.name}: {' '.join(argv)} --help\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    assert "Usage" in done.stdout


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_restart_and_keep_secrets_in_an_environment_file(path: Path) -> None:
    service = unit(path)["Service"]
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"].startswith("/etc/") and service["EnvironmentFile"].endswith("secrets.env")
    assert "password" not in service["ExecStart"].lower() and "@" not in service["ExecStart"].replace("%i", "")


def test_the_production_example_passes_the_production_check(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")  # only its existence is checked here
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EXPERIMENTHUB_TLS_DIR": str(tmp_path),
        "EXPERIMENTHUB_API_KEY": "k-" + "x" * 30,
        "MLFLOW_PASSWORD": "m-secret",
        "RABBITMQ_PASSWORD": "r-secret",
        "REDIS_PASSWORD": "d-secret",
    }
    command = [str(Path(sys.executable).with_name("experimenthub")), "config", "check", "--production"]
    done = subprocess.run(
        [*command, str(ROOT / "examples" / "hub_config.production.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid (production)" in done.stdout
    for secret in ("m-secret", "r-secret", "d-secret"):
        assert secret not in done.stdout + done.stderr
