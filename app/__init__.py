"""MeDSLIP inference service (FastAPI on ONNX Runtime, never imports torch), app.imaging, app.bridge."""
