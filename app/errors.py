"""The service's domain errors: what went wrong, as a stable machine-readable `code` and a detail.

Why no HTTP here: the engine (batcher, service, runtime, text queries, postprocessing) raises these
and must be usable and testable without a web framework. The one translation into HTTP statuses,
titles and headers is `app.problems`; the pixel module's refusals (`app.contract.imaging.ImagingError`) are
the other family of domain errors and go through the same table.

Details never carry patient data (names, IDs, dates, UIDs) or raw header values.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """A failure with a stable `code` and a patient-data-free `detail`.

    `retry_after_s`: when the condition is expected to pass (load, draining, warm-up), how many
    seconds a client should wait before retrying; None when retrying the same request cannot help.
    """

    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class QueueFullError(ServiceError):
    """Queued plus decoding requests already fill the queue bound."""

    code = "queue_full"


class LatencyBudgetExceededError(ServiceError):
    """The expected wait for a result exceeds the latency budget."""

    code = "latency_budget_exceeded"


class UploadBudgetExceededError(ServiceError):
    """Buffering this body would exceed the bytes all uploads may hold together."""

    code = "upload_budget_exceeded"


class DecodeBudgetExceededError(ServiceError):
    """Decoding this image would exceed the memory all decodes may hold together."""

    code = "decode_budget_exceeded"


class RequestTimeoutError(ServiceError):
    """The request body arrived too slowly."""

    code = "request_timeout"


class DeadlineExceededError(ServiceError):
    """No result before the request's deadline."""

    code = "deadline_exceeded"


class PayloadTooLargeError(ServiceError):
    """The request body is larger than allowed."""

    code = "payload_too_large"


class MissingFileError(ServiceError):
    """The request holds no image."""

    code = "missing_file"


class MalformedMultipartError(ServiceError):
    """A multipart/form-data body that cannot be parsed or breaks the form's rules."""

    code = "malformed_multipart"


class UnauthorizedError(ServiceError):
    """No API key, or not a configured one."""

    code = "unauthorized"


class UnknownNameError(ServiceError):
    """A finding or anatomy name the bundle does not know."""

    code = "unknown_name"


class TextEncoderUnavailableError(ServiceError):
    """Free-text findings were asked for but the bundle has no text encoder."""

    code = "text_encoder_unavailable"


class InvalidParameterError(ServiceError):
    """A request parameter has a value the service cannot use."""

    code = "invalid_parameter"


class UnknownModelError(ServiceError):
    """The request names a model this service does not serve."""

    code = "unknown_model"


class ModelNotReadyError(ServiceError):
    """The model is still loading or warming up."""

    code = "model_not_ready"


class InferenceFailedError(ServiceError):
    """The model call failed for the batch holding this request."""

    code = "inference_failed"


class ShuttingDownError(ServiceError):
    """The service is draining or stopping; another replica can take the request."""

    code = "shutting_down"
