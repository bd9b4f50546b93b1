"""The paper's evaluation protocols (`medslip-benchmark`): official-layout readers of CXR14, RSNA Pneumonia,
SIIM-ACR, COVIDx CXR-4 and MS-CXR, zero-shot classification and grounding, data-efficient fine-tuning,
and the report laid out like the paper's tables beside cited peer numbers."""
