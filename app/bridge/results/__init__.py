"""Result objects as standard DICOM (highdicom): TID 1500 SR, binary SEG, AI-labelled heatmap overlay."""

from app.bridge.results.writer import ResultObject, build_results

__all__ = ["ResultObject", "build_results"]
