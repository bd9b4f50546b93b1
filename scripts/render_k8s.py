"""Render a kustomize directory (base or overlay) to YAML without kubectl.

Why: CI and developer machines are bare (no kubectl), yet the manifests must be rendered and
validated there. This handles exactly the kustomize subset that `k8s/` uses — `resources` (files and
directories), `patches` given by `path` (strategic-merge patches, target = the resource with the same
kind and name) and `images` — and refuses any other field, so a manifest change that needs more of
kustomize fails loudly instead of rendering something different from `kubectl kustomize`.
tests/deploy/test_k8s.py checks that both render the same objects when kubectl is present.

    python scripts/render_k8s.py k8s/overlays/cpu > cpu.yaml
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILE = "kustomization.yaml"
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "images"})

#: Strategic-merge keys of the list fields our patches touch (from the Kubernetes API's
#: `x-kubernetes-patch-merge-key`). Lists not named here are replaced whole, as the API does for
#: lists without a merge key (e.g. tolerations, args, HPA metrics).
LIST_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    # Container ports merge on containerPort, Service ports on port.
    "ports": ("containerPort", "port"),
}

Resource = dict[str, Any]


class KustomizeError(ValueError):
    """The directory uses something this renderer does not implement, or a patch has no target."""


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document of a file."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def resource_id(resource: Resource) -> tuple[str, str]:
    """(kind, name): how a strategic-merge patch finds its target."""
    return str(resource.get("kind")), str(resource.get("metadata", {}).get("name"))


def _merge_key(field: str, items: list[Any]) -> str | None:
    """The key that identifies items of list `field`, or None when the list is replaced whole."""
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for key in LIST_MERGE_KEYS.get(field, ()):
        if all(key in item for item in items):
            return key
    return None


def _merge_list(field: str, base: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, base + patch)
    if key is None:
        return copy.deepcopy(patch)
    merged = [copy.deepcopy(item) for item in base]
    positions = {item[key]: index for index, item in enumerate(merged)}
    for item in patch:
        if item[key] in positions:
            index = positions[item[key]]
            merged[index] = strategic_merge(merged[index], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def strategic_merge(base: Resource, patch: Resource) -> Resource:
    """A new mapping: `patch` merged into `base` (maps recursively, keyed lists by item, others replaced).

    A `null` in the patch deletes the key, as in Kubernetes strategic-merge patches.
    """
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = strategic_merge(merged[key], value)
        elif isinstance(value, list) and isinstance(merged.get(key), list):
            merged[key] = _merge_list(key, merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _pod_containers(resource: Resource) -> Iterator[dict[str, Any]]:
    """Containers of a workload's pod template (or of a bare Pod)."""
    spec = resource.get("spec", {})
    pod_spec = spec.get("template", {}).get("spec", spec) if resource.get("kind") != "Pod" else spec
    for field in ("initContainers", "containers"):
        yield from pod_spec.get(field, []) or []


def _image_name(image: str) -> str:
    """Image reference without tag or digest (a registry port's colon is kept)."""
    name = image.split("@", 1)[0]
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > last_slash else name


def set_images(resources: list[Resource], images: list[dict[str, str]]) -> None:
    """Apply kustomize `images` entries (name -> newName/newTag/digest) in place."""
    for entry in images:
        for resource in resources:
            for container in _pod_containers(resource):
                if _image_name(container.get("image", "")) != entry["name"]:
                    continue
                reference = entry.get("newName", entry["name"])
                if "digest" in entry:
                    reference += "@" + entry["digest"]
                elif "newTag" in entry:
                    reference += ":" + str(entry["newTag"])
                container["image"] = reference


def render(directory: Path) -> list[Resource]:
    """The resources of a kustomization directory, with its patches and image settings applied."""
    kustomization_path = directory / KUSTOMIZATION_FILE
    if not kustomization_path.is_file():
        raise KustomizeError(f"{directory} has no {KUSTOMIZATION_FILE}")
    kustomization = load_documents(kustomization_path)[0]
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise KustomizeError(f"{kustomization_path}: unsupported kustomize fields {sorted(unsupported)}")

    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources.extend(render(path) if path.is_dir() else load_documents(path))

    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise KustomizeError(f"{kustomization_path}: only `patches: - path: FILE` is supported")
        for patch in load_documents(directory / patch_entry["path"]):
            targets = [i for i, r in enumerate(resources) if resource_id(r) == resource_id(patch)]
            if len(targets) != 1:
                raise KustomizeError(
                    f"patch {patch_entry['path']}: {len(targets)} targets for {resource_id(patch)}"
                )
            resources[targets[0]] = strategic_merge(resources[targets[0]], patch)

    set_images(resources, kustomization.get("images", []))
    return resources


def to_yaml(resources: list[Resource]) -> str:
    """Multi-document YAML, keys sorted like `kubectl kustomize` prints them."""
    return yaml.safe_dump_all(resources, sort_keys=True, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    """Print the rendered manifests of one kustomization directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a kustomization directory, e.g. k8s/overlays/gpu")
    args = parser.parse_args(argv)
    try:
        rendered = to_yaml(render(args.directory))
    except (KustomizeError, OSError, yaml.YAMLError) as error:
        sys.stderr.write(f"render_k8s: {error}\n")
        return 1
    sys.stdout.write(rendered)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
