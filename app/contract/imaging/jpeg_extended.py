"""12-bit JPEG Extended (1.2.840.10008.1.2.4.51) through imagecodecs, as a pydicom decoding plugin.

pydicom's plugins for this syntax are GDCM (which here fails on 12-bit samples), Pillow (8-bit only)
and pylibjpeg-libjpeg (GPL, deliberately not used). imagecodecs (BSD) bundles libjpeg-turbo 3, which
decodes 12-bit sequential JPEG; measured bit-identical to DCMTK's dcmdjpeg on pydicom's 12-bit test
files. The module is pydicom's plugin contract (``is_available``, ``DECODER_DEPENDENCIES``, a frame
decoder), so pydicom keeps doing what it does after any plugin: BitsStored masking, signedness, shape.

Registering a plugin changes pydicom's process-wide decoder, so it happens once, on first use, and
only adds a decoder: it never changes how other syntaxes decode.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading

import numpy as np
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import DecodeRunner
from pydicom.uid import JPEGExtended12Bit

__all__ = ["DECODER_DEPENDENCIES", "PLUGIN", "ensure_registered", "is_available", "twelve_bit_available"]

PLUGIN = "imagecodecs"
DECODER_DEPENDENCIES = {JPEGExtended12Bit: ("imagecodecs>=2024.1",)}
_lock = threading.Lock()


def twelve_bit_available() -> bool:
    """True when imagecodecs (and so a 12-bit JPEG decoder) is installed."""
    return importlib.util.find_spec("imagecodecs") is not None


def is_available(uid: str) -> bool:
    """pydicom plugin contract: this plugin decodes JPEG Extended when imagecodecs is installed."""
    return uid == JPEGExtended12Bit and twelve_bit_available()


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """pydicom plugin contract: one encoded frame in, its samples as little-endian bytes out.

    Gray frames only: a colour frame would need pydicom's 'no colour transform' convention, which
    the other plugins already implement for the 8-bit colour JPEGs that exist in practice.
    """
    if runner.samples_per_pixel != 1:
        raise NotImplementedError("the imagecodecs plugin decodes single-sample JPEG only")
    codecs = importlib.import_module("imagecodecs")  # deferred: loaded when a 12-bit JPEG arrives
    array = np.asarray(codecs.jpeg8_decode(src))  # (H, W) uint8 or uint16
    if array.ndim != 2:
        raise ValueError("the JPEG frame is not single-sample")
    width = 1 if runner.bits_allocated <= 8 else 2
    return array.astype(f"<u{width}", copy=False).tobytes()


def ensure_registered() -> bool:
    """Add this plugin to pydicom's JPEG Extended decoder (once); False when imagecodecs is absent."""
    if not twelve_bit_available():
        return False
    decoder = get_decoder(JPEGExtended12Bit)
    with _lock:
        if PLUGIN not in decoder.available_plugins:
            decoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
    return True
