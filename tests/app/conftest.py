"""Fixtures for the service tests: a tiny bundle, a started app with an httpx client, tiny images, and
a runner test double with hooks around each model call."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from fastapi import FastAPI
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from app.bundle import Bundle
from app.factory import RunnerFactory, create_app
from app.graph_contract import OUTPUT_NAMES
from app.runtime import ModelOutputs, OrtImageModel
from app.settings import Settings
from tests.fixtures.tiny_bundle import tiny_bundle  # noqa: F401  (re-exported fixture)

PHI = {
    "PatientName": "Zebulon^Quixotic",
    "PatientID": "PID-99887766",
    "PatientBirthDate": "19230417",
    "StudyDate": "20240102",
    "AccessionNumber": "ACC-55443322",
}


def png_bytes(height: int = 80, width: int = 120, *, bits: int = 8, seed: int = 0) -> bytes:
    """A random grayscale PNG (8- or 16-bit)."""
    rng = np.random.default_rng(seed)
    if bits == 16:
        array = rng.integers(0, 65535, (height, width), dtype=np.uint16)
        image = Image.fromarray(array)
    else:
        image = Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(height: int = 80, width: int = 120) -> bytes:
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def dicom_dataset(rows: int = 64, columns: int = 96, **overrides: Any) -> Dataset:
    """A valid 8-bit MONOCHROME2 DX chest dataset full of identifying attributes (to prove none leak)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")  # Digital X-Ray, for presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ramp = (np.arange(rows * columns, dtype=np.uint32) % 251).astype(np.uint8)
    ds.PixelData = ramp.reshape(rows, columns).tobytes()
    for keyword, value in overrides.items():
        setattr(ds, keyword, value)
    return ds


def dicom_bytes(ds: Dataset | None = None, *, preamble: bool = True) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds if ds is not None else dicom_dataset(), enforce_file_format=preamble)
    return buffer.getvalue()


class HookedRunner(OrtImageModel):
    """The real tiny model (CPU, one intra-op thread) with hooks around each call, warm-up included:
    a test double overrides `before_run` to wait on an event, sleep, count, record or fail (raise), and
    `after_run` to note when the real run has finished."""

    def __init__(
        self, bundle: Bundle, *, device: str = "cpu", intra_op_threads: int = 1, **options: Any
    ) -> None:
        super().__init__(bundle, device=device, intra_op_threads=intra_op_threads, **options)

    def before_run(self, images: np.ndarray, outputs: frozenset[str]) -> None:
        """Called with the batch and the outputs asked for before the real run; raising fails the call."""

    def after_run(self) -> None:
        """Called once the real run has returned."""

    def run(
        self,
        images: np.ndarray,
        pathology_queries: np.ndarray,
        anatomy_queries: np.ndarray,
        outputs: Iterable[str] = OUTPUT_NAMES,
    ) -> ModelOutputs:
        wanted = frozenset(outputs)
        self.before_run(images, wanted)
        result = super().run(images, pathology_queries, anatomy_queries, wanted)
        self.after_run()
        return result


async def wait_ready(client: httpx.AsyncClient, attempts: int = 200) -> None:
    """Poll /health/ready (bounded) until the model is warmed up."""
    for _ in range(attempts):
        if (await client.get("/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("service never became ready")


@asynccontextmanager
async def running_app(app: FastAPI, *, ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            if ready:
                await wait_ready(client)
            yield client


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
