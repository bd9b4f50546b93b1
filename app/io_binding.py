"""One model call through ONNX Runtime IO binding: inputs bound from host numpy, outputs left on the
execution device and copied to the host once, after the whole graph has run.

Why: with `InferenceSession.run` on CUDA, ONNX Runtime allocates every output in host memory and
synchronises per output; binding the outputs to the device lets the graph run without host round trips
and brings each result back in one copy. On the CPU the binding is the same call with "cpu" outputs, so
the path is tested without a GPU (tests/app/test_runtime_and_text.py) and gives identical numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnxruntime as ort

#: ONNX Runtime provider -> the OrtDevice type its outputs are bound to.
DEVICE_TYPES: dict[str, str] = {"CUDAExecutionProvider": "cuda", "CPUExecutionProvider": "cpu"}


def output_device(provider: str) -> str:
    """The device type outputs of a session on `provider` are bound to ("cuda" or "cpu")."""
    try:
        return DEVICE_TYPES[provider]
    except KeyError:
        raise ValueError(f"IO binding is not set up for {provider}") from None


def run_bound(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    output_names: Sequence[str],
    device_type: str,
    device_id: int = 0,
) -> list[np.ndarray]:
    """Run `session` once with `feeds` bound from host memory and `output_names` bound to `device_type`;
    returns the outputs as host arrays, in `output_names` order."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    for name in output_names:
        binding.bind_output(name, device_type, device_id)
    session.run_with_iobinding(binding)
    return [np.asarray(value) for value in binding.copy_outputs_to_cpu()]
