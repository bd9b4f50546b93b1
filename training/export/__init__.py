"""The export stage: a trained checkpoint becomes a bundle the torch-free service serves.

`bundle` (`medslip-export`: graphs, books, card, metadata), `graph` (the modules exported and their
parity), `text_encoder` (`medslip-export-text`), `weight_precision` (fp16 and dynamic int8 weights),
`int8_static` (`medslip-quantize-int8`: calibrated static int8 variants, with `int8_recipes` and
`int8_measure`), `model_card`, `onnx_tools`. Nothing is imported here.
"""
