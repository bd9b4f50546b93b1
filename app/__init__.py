"""MeDSLIP inference service (FastAPI on ONNX Runtime, never imports torch), its contract (app.contract)
and the PACS bridge (app.bridge)."""
