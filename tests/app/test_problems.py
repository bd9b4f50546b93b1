"""The one mapping from domain errors to problem+json: complete, and headers derived from the error."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from app import errors
from app.contract import imaging as img
from app.problems import DOMAIN_ERRORS, PROBLEM_TYPES, problem_for

APP = Path(__file__).resolve().parents[2] / "app"


def domain_error_classes() -> list[type[Exception]]:
    """Every public class below the domain roots (private helper bases resolve to their parent)."""
    found: list[type[Exception]] = []
    pending: list[type[Exception]] = list(DOMAIN_ERRORS)
    while pending:
        cls = pending.pop()
        if not cls.__name__.startswith("_"):
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_domain_error_class_is_mapped() -> None:
    classes = domain_error_classes()
    assert len(classes) >= 25  # both families were walked
    unmapped = sorted(cls.__qualname__ for cls in classes if cls not in PROBLEM_TYPES)
    assert unmapped == []


def test_openapi_descriptions_name_every_mapped_code_under_its_status() -> None:
    """The OpenAPI answers (app.contract.http.PROBLEM_STATUSES, a contract module without the web framework)
    list each problem code under the status the mapping sends it with."""
    from app.contract.http import PROBLEM_STATUSES

    missing = []
    for cls, problem in PROBLEM_TYPES.items():
        code = getattr(cls, "default_code", None) or getattr(cls, "code", None)
        if not isinstance(code, str) or cls in DOMAIN_ERRORS:  # the roots are never raised as such
            continue
        if not re.search(rf"\b{re.escape(code)}\b", PROBLEM_STATUSES.get(problem.status, "")):
            missing.append(f"{problem.status} {code}")
    assert missing == []


def test_codes_are_unique_per_class() -> None:
    codes: dict[str, type[Exception]] = {}
    for cls in domain_error_classes():
        code = getattr(cls, "default_code", None) or getattr(cls, "code", None)
        if cls in DOMAIN_ERRORS or not isinstance(code, str):
            continue
        assert code not in codes, f"{cls.__name__} and {codes[code].__name__} share {code}"
        codes[code] = cls


@pytest.mark.parametrize(
    ("exc", "status", "code", "headers"),
    [
        (errors.QueueFullError("full", retry_after_s=3), 503, "queue_full", {"Retry-After": "3"}),
        (errors.UnauthorizedError("no key"), 401, "unauthorized", {"WWW-Authenticate": "Bearer"}),
        (errors.DeadlineExceededError("late"), 504, "deadline_exceeded", {}),
        (img.ImageTooLargeError("too many pixels"), 413, "image_too_large", {}),
        (img.UnsupportedMediaTypeError("not an image"), 415, "unsupported_media_type", {}),
        (img.NotChestError("knee"), 422, "not_chest", {}),
    ],
)
def test_problem_for(exc: Exception, status: int, code: str, headers: dict[str, str]) -> None:
    assert isinstance(exc, errors.ServiceError | img.ImagingError)
    problem = problem_for(exc)
    assert (problem.status, problem.code, problem.headers) == (status, code, headers)


def test_one_unsupported_media_type_class() -> None:
    assert not hasattr(errors, "UnsupportedMediaTypeError")


def test_domain_errors_import_no_web_framework() -> None:
    tree = ast.parse((APP / "errors.py").read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {name for name in imported if name.split(".")[0] in {"fastapi", "starlette"}}


def test_contract_document_lists_the_mapping() -> None:
    """docs/contracts.md's problem table is the mapping, row for row."""
    expected = set()
    for cls, kind in PROBLEM_TYPES.items():
        if cls in DOMAIN_ERRORS:
            continue
        imaging = "app.contract.imaging"
        module = imaging if cls.__module__.startswith(imaging) else cls.__module__
        code = getattr(cls, "default_code", None) or getattr(cls, "code", "")
        expected.add(f"| {kind.status} | `{code}` | {kind.title} | `{module}.{cls.__name__}` |")
    document = (APP.parent / "docs" / "contracts.md").read_text()
    documented = {line for line in document.splitlines() if re.match(r"^\| \d{3} \| `\w+` \|", line)}
    assert documented == expected
