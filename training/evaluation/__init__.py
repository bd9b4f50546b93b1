"""Evaluation: `evaluate` (medslip-eval: classification, grounding, segmentation and calibration of a
checkpoint or an exported bundle on the validation splits), `predictors` (one interface over a PyTorch
checkpoint and an ONNX bundle run by the service's own runner) and `compare_grounding` (the heat-map
methods side by side on the NIH boxes)."""
