"""Every file of the third-party corpus that ships inside the pydicom wheel, through the service's
entry point: real-world DICOM written by many tools (all transfer syntaxes, colour models, broken
and truncated files, DICOMDIRs, SRs, RT objects) plus the non-DICOM files shipped beside them.

Each file must either decode to finite [0, 1] pixels whose model input is finite, or be refused with
an ``ImagingError`` carrying a contract code; nothing else may escape (an escape is an HTTP 500).
Each file runs twice: as the service runs it, and with the chest, view and size rules off, so the
pixel pipeline sees every image the corpus holds, not only the few that are chest radiographs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.contract.imaging import ERROR_CODES, DecodedImage, ImagingError, decode_bytes, preprocess

# Some corpus files are deliberately non-conformant; pydicom warns about them while reading.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

CORPUS = Path(pydicom.__file__).resolve().parent / "data"
FOLDERS = ("test_files", "charset_files", "palettes")
FILES = sorted(
    path.relative_to(CORPUS).as_posix()
    for folder in FOLDERS
    for path in (CORPUS / folder).rglob("*")
    if path.is_file()
)
PERMISSIVE = {"check_body_part": False, "allow_lateral": True, "min_side": 0}
# Files whose pixels must decode (the pipeline's own coverage; a regression here is silent otherwise).
MUST_DECODE = (
    "test_files/CT_small.dcm",
    "test_files/JPEG-lossy.dcm",
    "test_files/JPGExtended.dcm",
    "test_files/JPEG2000.dcm",
    "test_files/MR_small.dcm",
    "test_files/MR_small_RLE.dcm",
    "test_files/MR_small_bigendian.dcm",
    "test_files/MR_small_jp2klossless.dcm",
    "test_files/MR_small_jpeg_ls_lossless.dcm",
    "test_files/JPEGLSNearLossless_16.dcm",
    "test_files/SC_rgb_jpeg_dcmd.dcm",
    "test_files/image_dfl.dcm",
)


def _outcome(data: bytes, **options: object) -> DecodedImage | ImagingError:
    """The decoded image or the refusal; any other exception fails the test where it is raised."""
    try:
        return decode_bytes(data, "application/dicom", **options)  # type: ignore[arg-type]
    except ImagingError as error:
        return error


def _check(outcome: DecodedImage | ImagingError) -> None:
    if isinstance(outcome, ImagingError):
        assert outcome.code in ERROR_CODES
        assert outcome.detail
        return
    pixels = outcome.pixels
    assert pixels.dtype == np.float32 and pixels.ndim == 2
    assert pixels.shape == (outcome.info.rows, outcome.info.columns)
    assert np.isfinite(pixels).all()
    assert float(pixels.min()) >= 0.0 and float(pixels.max()) <= 1.0
    tensor, _ = preprocess(pixels, 32)
    assert np.isfinite(tensor).all()


def test_the_corpus_is_there() -> None:
    """Nothing is skipped silently: a wheel without its data would make the test below vacuous."""
    assert len(FILES) >= 150
    assert set(MUST_DECODE) <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_decodes_or_is_refused_with_a_code(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    _check(_outcome(data))
    _check(_outcome(data, **PERMISSIVE))


@pytest.mark.parametrize("name", MUST_DECODE)
def test_corpus_images_the_pipeline_covers_decode(name: str) -> None:
    outcome = _outcome((CORPUS / name).read_bytes(), **PERMISSIVE)
    assert isinstance(outcome, DecodedImage), getattr(outcome, "detail", "")
