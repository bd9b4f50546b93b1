"""HTTP client of the inference service: the bridge's only way to reach the model.

Transient failures (network, timeouts, 429, 5xx) are retried with backoff and the same
Idempotency-Key, so a retried request never makes the service do or record the work twice.
A 4xx problem+json answer is a refusal for good (e.g. `not_chest`) and is not retried. Answers are
parsed with the service's own response models (`app.contract.http`): an answer that breaks the HTTP
contract is a service fault (retried later), never a half-read dict written into a DICOM object.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.bridge.identifiers import idempotency_key
from app.bridge.inference import InferenceResult
from app.bridge.retry import Backoff
from app.contract.http import ClassifyResponse, GroundResponse, ModelMetadata, Problem, SegmentResponse
from app.contract.vocabulary import SEGMENTATION_STRUCTURES

logger = logging.getLogger(__name__)

_Response = TypeVar("_Response", bound=BaseModel)
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ServiceRefusedError(Exception):
    """The service answered 4xx: this instance will never be accepted (code from problem+json)."""

    def __init__(self, status: int, code: str, route: str) -> None:
        super().__init__(f"{route} refused with HTTP {status}: {code}")
        self.status = status
        self.code = code
        self.route = route


class ServiceUnavailableError(Exception):
    """All immediate retries failed; the dispatcher will try again later or dead-letter."""


class InferenceClient:
    """Calls /classify, /ground and /segment for one DICOM instance."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 60.0,
        retries: int = 3,
        backoff: Backoff | None = None,
        model_name: str = "medslip-cxr",
        model_version: str = "",
        api_key: str = "",
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout_seconds, transport=transport, headers=headers
        )
        self._retries = retries
        self._backoff = backoff or Backoff()
        self._model_name = model_name
        self._model_version = model_version
        self._sleep = sleep

    def close(self) -> None:
        self._client.close()

    def model_version(self) -> str:
        """Version that goes into idempotency keys: configured, else read once from OIP model metadata."""
        if not self._model_version:
            try:
                response = self._request("GET", f"/v2/models/{self._model_name}", route="model")
            except ServiceRefusedError as exc:  # e.g. 404 unknown_model: a config problem, not the image's
                raise ServiceUnavailableError(f"model metadata: {exc.code}") from exc
            try:
                versions = ModelMetadata.model_validate_json(response.content).versions
            except ValidationError as exc:
                raise ServiceUnavailableError("model metadata does not match ModelMetadata") from exc
            if not versions:
                raise ServiceUnavailableError("model metadata lists no version")
            self._model_version = str(versions[0])
        return self._model_version

    def infer(
        self, dicom: bytes, sop_instance_uid: str, findings: Sequence[str], max_grounded: int | None
    ) -> InferenceResult:
        """Scores of every finding; heatmap + anatomy for the top `max_grounded` (None: all); masks."""
        version = self.model_version()
        params: list[tuple[str, str]] = [("findings", name) for name in findings]
        uid = sop_instance_uid
        classify = self._post_dicom(ClassifyResponse, "classify", dicom, uid, version, params=params)
        ranked = sorted(classify.findings, key=lambda f: f.score, reverse=True)
        grounded = [f.name for f in (ranked if max_grounded is None else ranked[:max_grounded])]
        ground = None
        if grounded:
            wanted = [("findings", name) for name in grounded]
            ground = self._post_dicom(GroundResponse, "ground", dicom, uid, version, params=wanted)
        structures = [("anatomy", name) for name in SEGMENTATION_STRUCTURES]
        segment = self._post_dicom(SegmentResponse, "segment", dicom, uid, version, params=structures)
        return InferenceResult(classify=classify, ground=ground, segment=segment)

    def _post_dicom(
        self,
        model: type[_Response],
        route: str,
        dicom: bytes,
        sop_instance_uid: str,
        version: str,
        *,
        params: list[tuple[str, str]],
    ) -> _Response:
        headers = {
            "Content-Type": "application/dicom",
            "Accept": "application/json",
            "Idempotency-Key": idempotency_key(sop_instance_uid, version, route),
        }
        response = self._request(
            "POST", f"/{route}", route=route, content=dicom, headers=headers, params=params
        )
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:  # the service broke its contract: a fault on its side, retry later
            raise ServiceUnavailableError(f"{route}: answer does not match {model.__name__}") from exc

    def _request(self, method: str, path: str, *, route: str, **kwargs: Any) -> httpx.Response:
        """One logical call: retried on transient failures, raised as refusal on a 4xx answer."""
        last_problem = "no attempt"
        for attempt in range(self._retries + 1):
            retry_after: float | None = None
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                last_problem = type(exc).__name__
            else:
                if response.is_success:
                    return response
                if response.status_code not in _RETRYABLE_STATUS:
                    raise ServiceRefusedError(response.status_code, _problem_code(response), route)
                last_problem = f"HTTP {response.status_code}"
                retry_after = _retry_after_seconds(response)
            if attempt < self._retries:
                delay = self._backoff.delay(attempt, retry_after)
                logger.warning(
                    "service call failed, retrying",
                    extra={"route": route, "attempt": attempt + 1, "problem": last_problem, "delay_s": delay},
                )
                self._sleep(delay)
        raise ServiceUnavailableError(f"{route}: {last_problem} after {self._retries + 1} attempts")


def _problem_code(response: httpx.Response) -> str:
    """The stable `code` of the service's problem+json body (`app.contract.http.Problem`), else one from
    the status (e.g. a proxy in between answered with its own page)."""
    try:
        return Problem.model_validate_json(response.content).code
    except ValidationError:
        return f"http_{response.status_code}"


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff
