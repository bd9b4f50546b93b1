"""Fixtures for the service tests: a tiny bundle, settings and apps built on it, a started app with
an httpx client, and a model pool for batcher tests. Helpers live in `tests.support`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.factory import RunnerFactory, create_app
from app.settings import Settings
from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (re-exported fixture)
from tests.support.service import running_app


@pytest.fixture
def make_settings(tiny_bundle: Path) -> Callable[..., Settings]:  # noqa: F811
    def build(**overrides: Any) -> Settings:
        # Decoding in the worker threads keeps each app's start cheap; the decode processes (the
        # default) are exercised by test_decode_pool.py and by the served-process tests.
        base: dict[str, Any] = {
            "model_dir": tiny_bundle,
            "intra_op_threads": 1,
            "worker_threads": 2,
            "decode_processes": 0,
        }
        return Settings(**{**base, **overrides})

    return build


@pytest.fixture
def make_app(make_settings: Callable[..., Settings]) -> Callable[..., FastAPI]:
    def build(runner_factory: RunnerFactory | None = None, **overrides: Any) -> FastAPI:
        return create_app(make_settings(**overrides), runner_factory=runner_factory)

    return build


@pytest.fixture
async def client(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_app()) as started:
        yield started


@pytest.fixture
def model_pool() -> Iterator[ThreadPoolExecutor]:
    """A one-thread model pool for batcher tests, shut down when the test ends (none outlives it)."""
    with ThreadPoolExecutor(1, thread_name_prefix="test-model") as pool:
        yield pool
