# syntax=docker/dockerfile:1
#
# MeDSLIP images. Research software, not a medical device.
#
#   docker build -t medslip:cpu .                                   # inference service, CPU (default)
#   docker build -t medslip:gpu --build-arg VARIANT=gpu .           # inference service, CUDA 12 + cuDNN 9
#   docker build -t medslip-bridge --target bridge .                # PACS bridge (always CPU)
#
# The runtime images never contain torch: the service needs only ONNX Runtime. VARIANT picks both the
# base image and the onnxruntime flavour (`.[serve]` vs `.[serve-gpu]`; the two wheels provide the same
# module and must never be installed together). Every stage of one variant uses the same base image, so
# the virtual environment built in `builder-*` runs unchanged in the runtime stage.
# All stages run as an unprivileged user and write nowhere but mounted volumes and /tmp, so the
# containers work with a read-only root filesystem (compose `read_only: true`, k8s
# `readOnlyRootFilesystem: true`).

ARG VARIANT=cpu
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
# CUDA 12 + cuDNN 9 is what the onnxruntime-gpu wheels on PyPI are built against; Ubuntu 24.04's Python
# (3.12) satisfies requires-python.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------------
# Base images: identical environment variables and user for both variants.
FROM ${PYTHON_IMAGE} AS base-cpu
ENV PATH=/opt/venv/bin:$PATH
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin medslip

FROM ${CUDA_IMAGE} AS base-gpu
ENV PATH=/opt/venv/bin:$PATH
# Versions are not pinned: Ubuntu's archive drops superseded versions, which would break every rebuild;
# the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin medslip

# ---------------------------------------------------------------------------------------------------
# Wheel of the project itself, built once and shared by every variant and target.
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY training ./training
# pip's own build isolation fetches setuptools/wheel at the versions pyproject.toml's build-system asks.
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------------
# Virtual environment of the inference service; `.[serve]` or `.[serve-gpu]` by VARIANT.
# base-${VARIANT} is a stage of this file whose image tag is pinned above; hadolint cannot resolve it.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS builder-serve
ARG VARIANT
COPY --from=wheel /wheels /wheels
# The project's dependency ranges live in pyproject.toml; pinning them again here would drift.
RUN python3 -m venv /opt/venv \
    && if [ "${VARIANT}" = "gpu" ]; then extra=serve-gpu; else extra=serve; fi \
    && wheel_file="$(find /wheels -name 'medslip-*.whl')" \
    && /opt/venv/bin/pip install --no-cache-dir "${wheel_file}[${extra}]" \
    && /opt/venv/bin/python -c "import onnxruntime" \
    && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then echo "torch leaked into the runtime image" >&2; exit 1; fi \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# ---------------------------------------------------------------------------------------------------
# Virtual environment of the PACS bridge (no ONNX Runtime, no GPU).
FROM base-cpu AS builder-bridge
COPY --from=wheel /wheels /wheels
RUN python3 -m venv /opt/venv \
    && wheel_file="$(find /wheels -name 'medslip-*.whl')" \
    && /opt/venv/bin/pip install --no-cache-dir "${wheel_file}[bridge]" \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# ---------------------------------------------------------------------------------------------------
# PACS bridge: C-STORE SCP on 11112, STOW-RS/health/metrics on 8080, spool on a volume.
FROM base-cpu AS bridge
COPY --from=builder-bridge /opt/venv /opt/venv
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MEDSLIP_BRIDGE_HTTP_HOST=0.0.0.0 \
    MEDSLIP_BRIDGE_HTTP_PORT=8080 \
    MEDSLIP_BRIDGE_DICOM_PORT=11112 \
    MEDSLIP_BRIDGE_SPOOL_DIR=/var/lib/medslip-bridge/spool
RUN mkdir -p /var/lib/medslip-bridge/spool && chown -R medslip:medslip /var/lib/medslip-bridge
VOLUME ["/var/lib/medslip-bridge/spool"]
USER 10001:10001
EXPOSE 11112 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
ENTRYPOINT ["medslip-bridge"]

# ---------------------------------------------------------------------------------------------------
# Inference service (default target): FastAPI on 8000 serving the bundles copied from model_store/.
# base-${VARIANT} is a stage of this file (see builder-serve).
# hadolint ignore=DL3006
FROM base-${VARIANT} AS serve
ARG VARIANT
LABEL org.opencontainers.image.title="medslip-serve" \
      org.opencontainers.image.description="MeDSLIP chest X-ray inference service on ONNX Runtime (research only, not a medical device)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.medslip.variant="${VARIANT}"
COPY --from=builder-serve /opt/venv /opt/venv
# Bundles are data, not code: owned by root and read-only for the service user.
COPY model_store/ /opt/medslip/model_store/
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MEDSLIP_MODEL_STORE=/opt/medslip/model_store \
    MEDSLIP_HOST=0.0.0.0 \
    MEDSLIP_PORT=8000
USER 10001:10001
EXPOSE 8000
# Readiness, not liveness: the container is healthy only once the bundle is loaded and verified.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4)"]
ENTRYPOINT ["medslip-serve"]
