"""The README runs as written: every code block marked ``<!-- runnable -->`` runs, in order, in a fresh folder laid
out like the repository root (``hub_config.yaml`` pointing at servers, ``examples/``, ``.venv``), with every
service port refused (``tests/no_services``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- runnable -->\n```(bash|python)\n(.*?)```", re.S)


def runnable_blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_readme_has_runnable_blocks() -> None:
    languages = [language for language, _ in runnable_blocks()]
    assert "bash" in languages and "python" in languages


@pytest.mark.timeout(1800)  # a dozen CLI processes, four trainings: slow on a busy 2-core machine
def test_readme_blocks_run_as_written(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copy(ROOT / "hub_config.yaml", tmp_path / "hub_config.yaml")  # the servers' file, as in the repository
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    python_path = [str(ROOT / "tests" / "no_services"), str(ROOT)]
    env = {
        "PATH": "/usr/bin:/bin",  # experimenthub is not on PATH until the README puts it there
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join(python_path),
        "COLUMNS": "120",
    }
    for index, (language, code) in enumerate(runnable_blocks()):
        if language == "bash":
            command = ["bash", "-euo", "pipefail", "-c", code]
        else:
            script = tmp_path / f"readme_{index}.py"
            script.write_text(code)
            command = [str(tmp_path / ".venv" / "bin" / "python"), str(script)]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"README block {index} ({language}) failed:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        if language == "bash":
            assert "experimenthub: embedded default" in result.stderr  # the line that says which config loaded
    assert (tmp_path / "scores.csv").is_file() and (tmp_path / "data" / "load.csv").is_file()


@pytest.mark.parametrize("variable", ["--embedded", "EXPERIMENTHUB_EMBEDDED=1"])
def test_embedded_flag_and_variable_ignore_the_servers_file(tmp_path: Path, variable: str) -> None:
    shutil.copy(ROOT / "hub_config.yaml", tmp_path / "hub_config.yaml")
    exe = str(Path(sys.executable).with_name("experimenthub"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "no_services"), str(ROOT)])}
    flag = [variable] if variable.startswith("--") else []
    if not flag:
        env["EXPERIMENTHUB_EMBEDDED"] = "1"
    listed = subprocess.run([exe, *flag, "experiments", "list"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.startswith("experimenthub: embedded default (no servers; state in ")
    servers = subprocess.run(
        [exe, "experiments", "list"],
        cwd=tmp_path,
        env={**env, "EXPERIMENTHUB_EMBEDDED": ""},
        capture_output=True,
        text=True,
    )
    assert servers.returncode == 2 and "experimenthub: config hub_config.yaml" in servers.stderr
    error = servers.stderr.strip().splitlines()[-1]
    assert error.startswith("error: hub_config.yaml: plugin MLflowPlugin (mlops)") and "--embedded" in error
