"""k8s/ overlays render, pass `kubernetes-validate --strict` for a pinned Kubernetes, and hold the policy.

Rendering uses scripts/render_k8s.py (no kubectl in CI); where kubectl is installed, its
`kubectl kustomize` output must be the same objects, which keeps the small renderer honest.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from app.bridge.settings import BridgeSettings
from app.metrics import ServiceMetrics
from app.server import FINAL_GRACE_S
from app.settings import Settings
from tests.support.deploy_tooling import REPO_ROOT, require_tool, run_tool

#: Oldest supported Kubernetes minor the manifests are validated against; every kubernetes-validate
#: release allowed by pyproject (>= 1.30) ships its schemas offline.
KUBERNETES_VERSION = "1.30.0"
OVERLAYS = ("cpu", "gpu")
VALIDATE_HINT = "PyPI kubernetes-validate, in the dev extra"


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_k8s", REPO_ROOT / "scripts" / "render_k8s.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


renderer = _load_renderer()


def _render(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {renderer.resource_id(r): r for r in renderer.render(REPO_ROOT / "k8s" / "overlays" / overlay)}


def _api_pod(objects: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return dict(objects[("Deployment", "medslip-api")]["spec"]["template"]["spec"])


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The overlay rendered to one multi-document YAML file."""
    path = tmp_path_factory.mktemp("k8s") / f"{request.param}.yaml"
    path.write_text(renderer.to_yaml(list(_render(request.param).values())))
    return path


def test_rendered_overlay_passes_strict_validation(rendered: Path) -> None:
    validate = require_tool("kubernetes-validate", VALIDATE_HINT)
    result = run_tool([validate, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(rendered)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(list(yaml.safe_load_all(rendered.read_text())))


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        ("readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true"),  # unknown field: strict only
        ("minReplicas: 2", "minReplicas: two"),  # wrong type
    ],
)
def test_validation_fails_on_broken_copy(
    rendered: Path, tmp_path: Path, pattern: str, replacement: str
) -> None:
    validate = require_tool("kubernetes-validate", VALIDATE_HINT)
    text = rendered.read_text()
    assert pattern in text
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace(pattern, replacement, 1))
    result = run_tool([validate, "--strict", "--kubernetes-version", KUBERNETES_VERSION, str(broken)])
    assert result.returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_renderer_matches_kubectl_kustomize(overlay: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; scripts/render_k8s.py alone renders the overlays")
    try:
        result = subprocess.run(
            [kubectl, "kustomize", str(REPO_ROOT / "k8s" / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("kubectl kustomize did not answer in 60 s")
    if result.returncode != 0:
        pytest.skip(f"kubectl kustomize is unusable here: {result.stderr.strip()[:200]}")
    reference = {renderer.resource_id(r): r for r in yaml.safe_load_all(result.stdout) if r}
    assert _render(overlay) == reference


def test_api_deployment_probes_shutdown_and_hardening() -> None:
    for overlay in OVERLAYS:
        objects = _render(overlay)
        pod = _api_pod(objects)
        (container,) = pod["containers"]
        assert container["startupProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        pre_stop_s = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        drain_s = float(objects[("ConfigMap", "medslip-api-config")]["data"]["MEDSLIP_DRAIN_TIMEOUT_S"])
        # SIGTERM comes after preStop; then the drain, then the server's last grace for responses.
        assert pod["terminationGracePeriodSeconds"] > pre_stop_s + drain_s + FINAL_GRACE_S
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        hardening = container["securityContext"]
        assert hardening["readOnlyRootFilesystem"] is True
        assert hardening["allowPrivilegeEscalation"] is False
        assert hardening["capabilities"]["drop"] == ["ALL"]
        keys = {e["name"]: e for e in container["env"]}["MEDSLIP_API_KEYS"]
        assert keys["valueFrom"]["secretKeyRef"]["name"] == "medslip-api-keys"


def test_only_the_gpu_overlay_asks_for_a_gpu() -> None:
    cpu = _api_pod(_render("cpu"))["containers"][0]
    gpu = _api_pod(_render("gpu"))["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert cpu["image"].endswith("-cpu") and gpu["image"].endswith("-gpu")
    assert _render("gpu")[("ConfigMap", "medslip-api-config")]["data"]["MEDSLIP_DEVICE"] == "cuda"
    assert _render("cpu")[("ConfigMap", "medslip-api-config")]["data"]["MEDSLIP_DEVICE"] == "cpu"


def test_hpa_scales_on_a_metric_the_service_exports() -> None:
    exported = {metric.name for metric in ServiceMetrics().registry.collect()}
    for overlay in OVERLAYS:
        hpa = _render(overlay)[("HorizontalPodAutoscaler", "medslip-api")]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"]["name"] == "medslip-api"
        names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        assert names == ["medslip_queue_depth"]
        assert set(names) <= exported
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_selectors_and_network_policy_match_the_pods() -> None:
    objects = _render("cpu")
    api_labels = objects[("Deployment", "medslip-api")]["spec"]["template"]["metadata"]["labels"]
    bridge_labels = objects[("Deployment", "medslip-bridge")]["spec"]["template"]["metadata"]["labels"]
    for kind, name, labels in [
        ("Service", "medslip-api", api_labels),
        ("Service", "medslip-bridge", bridge_labels),
    ]:
        assert objects[(kind, name)]["spec"]["selector"].items() <= labels.items()
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        selector = (
            objects[(kind, "medslip-api")]["spec"].get("selector")
            or objects[(kind, "medslip-api")]["spec"]["podSelector"]
        )
        assert selector["matchLabels"].items() <= api_labels.items()
    peers = objects[("NetworkPolicy", "medslip-api")]["spec"]["ingress"][0]["from"]
    pod_peers = [p["podSelector"]["matchLabels"] for p in peers if "podSelector" in p]
    assert pod_peers == [{"app.kubernetes.io/name": "medslip-bridge"}]
    assert pod_peers[0].items() <= bridge_labels.items()


def test_bridge_keeps_its_spool_on_a_claim_and_exposes_dicom() -> None:
    objects = _render("cpu")
    bridge = objects[("Deployment", "medslip-bridge")]
    assert bridge["spec"]["replicas"] == 1 and bridge["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in bridge["spec"]["template"]["spec"]["volumes"]}
    claim = volumes["spool"]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in objects
    spool_dir = objects[("ConfigMap", "medslip-bridge-config")]["data"]["MEDSLIP_BRIDGE_SPOOL_DIR"]
    mounts = {
        m["name"]: m["mountPath"] for m in bridge["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["spool"] == spool_dir
    ports = {p["name"]: p["port"] for p in objects[("Service", "medslip-bridge")]["spec"]["ports"]}
    assert ports["dicom"] == 11112


def test_configmap_keys_are_real_settings() -> None:
    """pydantic-settings ignores unknown variables, so a typo would silently fall back to a default."""
    service_fields = {f"MEDSLIP_{name.upper()}" for name in Settings.model_fields}
    bridge_fields = {f"MEDSLIP_BRIDGE_{name.upper()}" for name in BridgeSettings.model_fields}
    for overlay in OVERLAYS:
        objects = _render(overlay)
        assert set(objects[("ConfigMap", "medslip-api-config")]["data"]) <= service_fields
        assert set(objects[("ConfigMap", "medslip-bridge-config")]["data"]) <= bridge_fields


# --- the renderer itself ----------------------------------------------------------------------


def test_strategic_merge_merges_keyed_lists_and_replaces_others() -> None:
    base: dict[str, Any] = {
        "spec": {
            "containers": [{"name": "api", "env": [{"name": "A", "value": "1"}], "args": ["x"]}],
            "tolerations": [{"key": "a"}],
        }
    }
    patch: dict[str, Any] = {
        "spec": {
            "containers": [{"name": "api", "env": [{"name": "B", "value": "2"}], "args": ["y"]}],
            "tolerations": [{"key": "b"}],
        }
    }
    merged = renderer.strategic_merge(base, patch)
    (container,) = merged["spec"]["containers"]
    assert container["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert container["args"] == ["y"]
    assert merged["spec"]["tolerations"] == [{"key": "b"}]
    assert base["spec"]["containers"][0]["args"] == ["x"], "the input must not be modified"
    assert renderer.strategic_merge({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


@pytest.mark.parametrize(
    ("image", "name"),
    [
        ("medslip", "medslip"),
        ("medslip:1.0", "medslip"),
        ("reg:5000/team/medslip:1.0", "reg:5000/team/medslip"),
        ("medslip@sha256:abc", "medslip"),
    ],
)
def test_image_name_drops_tag_and_digest_only(image: str, name: str) -> None:
    assert renderer._image_name(image) == name


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(renderer.KustomizeError, match="namePrefix"):
        renderer.render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches:\n  - path: p.yaml\n")
    (tmp_path / "p.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: nowhere\n")
    with pytest.raises(renderer.KustomizeError, match="0 targets"):
        renderer.render(tmp_path)


def test_renderer_cli_prints_yaml_and_reports_errors(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/render_k8s.py"), str(REPO_ROOT / "k8s/overlays/gpu")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0
    assert re.search(r"nvidia.com/gpu: 1", ok.stdout)
    missing = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/render_k8s.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "kustomization.yaml" in missing.stderr
