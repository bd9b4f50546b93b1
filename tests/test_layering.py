"""The layering of docs/contracts.md, enforced on the source: every import statement, at any depth
(function-level imports included), read with `ast` without importing anything.

- the contract package `app.contract` (what both sides of an interface share) imports neither torch
  nor a web framework (fastapi, starlette), and of our code only itself;
- nothing in `app/` imports torch or `training` (the service image ships without them);
- the PACS bridge imports, of our code, only the contract package and its own package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app"

#: The contract package of docs/contracts.md, with everything below it.
CONTRACT = "app.contract"
WEB_FRAMEWORKS = ("fastapi", "starlette")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def under(name: str, prefixes: tuple[str, ...] | str) -> bool:
    """`name` is one of `prefixes` or inside one of them (a.b is under a, a.bc is not)."""
    candidates = (prefixes,) if isinstance(prefixes, str) else prefixes
    return any(name == prefix or name.startswith(prefix + ".") for prefix in candidates)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; relative imports resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module


def sources(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in files
        for line, name in imports(path)
        if under(name, forbidden)
    ]


def contract_files() -> list[Path]:
    return [path for path in sources(APP) if under(module_name(path), CONTRACT)]


def test_the_walk_sees_the_tree() -> None:
    names = {module_name(p) for p in contract_files()}
    assert {
        "app.contract",
        "app.contract.imaging",
        "app.contract.imaging.decode",
        "app.contract.bundle",
        "app.contract.http",
        "app.contract.graphs",
        "app.contract.vocabulary",
    } <= names
    found = {name for _, name in imports(APP / "service.py")}
    assert "app.batching" in found and "numpy" in found


def test_contract_modules_import_neither_torch_nor_a_web_framework() -> None:
    assert violations(contract_files(), ("torch", "training", *WEB_FRAMEWORKS)) == []


def test_contract_modules_import_only_contract_modules_of_ours() -> None:
    outside = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in contract_files()
        for line, name in imports(path)
        if under(name, "app") and not under(name, CONTRACT)
    ]
    assert outside == []


def test_service_never_imports_torch_or_training() -> None:
    assert violations(sources(APP), ("torch", "training")) == []


def test_service_does_not_import_the_bridge() -> None:
    service = [path for path in sources(APP) if not under(module_name(path), "app.bridge")]
    assert violations(service, ("app.bridge",)) == []


@pytest.mark.parametrize("layer", ["app.errors", "app.batching", "app.admission"])
def test_engine_modules_import_no_web_framework(layer: str) -> None:
    path = APP / (layer.split(".", 1)[1] + ".py")
    assert violations([path], WEB_FRAMEWORKS) == []


def test_bridge_imports_only_the_contract_and_itself() -> None:
    outside = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sources(APP / "bridge")
        for line, name in imports(path)
        if under(name, ("app", "training")) and not under(name, ("app.bridge", CONTRACT))
    ]
    assert outside == []
