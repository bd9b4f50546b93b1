"""Example overlays of what the service returns, for people to look at (docs/examples/).

Runs the real service in-process on a bundle, POSTs real films to `/segment` and `/ground`, and draws the
returned masks (lungs, heart) and the top finding heatmap over the original image. Everything drawn comes
from the HTTP responses, so the pictures show the service contract, not training-side code.

    python scripts/make_overlays.py --out docs/examples IMAGE [IMAGE ...]

With `--boxes-csv ../shared/data/nih-cxr14/manifest.csv`, a film listed there with radiologist boxes gets
the heatmap of its boxed finding, the box outlined in white and the heatmap's peak as a cyan cross.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from app.contract.imaging import WASHED_OUT_SPAN, decode_path, stretch_washed_out
from app.factory import create_app
from app.settings import Settings

logger = logging.getLogger(__name__)

#: structure -> RGB colour of its outline fill
COLOURS = {"right_lung": (0, 160, 255), "left_lung": (0, 220, 120), "heart": (255, 60, 60)}
MEDIA_TYPES = {".dcm": "application/dicom", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def _png(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L"), dtype=np.float32) / 255.0


def _post(client: TestClient, route: str, path: Path, params: dict[str, Any]) -> dict[str, Any]:
    headers = {"Content-Type": MEDIA_TYPES[path.suffix.lower()]}
    response = client.post(route, params=params, content=path.read_bytes(), headers=headers)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def read_boxes(path: Path | None) -> dict[str, list[dict[str, Any]]]:
    """File name -> its boxes [{finding, box: [x0, y0, x1, y1]}] from an NIH-style manifest."""
    if path is None:
        return {}
    with path.open(encoding="utf-8", newline="") as handle:
        return {Path(row["image"]).name: json.loads(row["boxes"])
                for row in csv.DictReader(handle) if row.get("boxes", "").strip() not in ("", "[]")}


def _draw_box(rgb: np.ndarray, box: list[float], colour: tuple[int, int, int], width: int = 3) -> None:
    height, wide = rgb.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(wide - 1, int(box[2])), min(height - 1, int(box[3]))
    for offset in range(width):
        rgb[y0 + offset, x0:x1 + 1] = rgb[max(y0, y1 - offset), x0:x1 + 1] = colour
        rgb[y0:y1 + 1, x0 + offset] = rgb[y0:y1 + 1, max(x0, x1 - offset)] = colour


def _draw_cross(rgb: np.ndarray, x: int, y: int, colour: tuple[int, int, int], arm: int = 12) -> None:
    height, wide = rgb.shape[:2]
    rgb[max(0, y - 1):y + 2, max(0, x - arm):min(wide, x + arm + 1)] = colour
    rgb[max(0, y - arm):min(height, y + arm + 1), max(0, x - 1):x + 2] = colour


def overlay(path: Path, segment: dict[str, Any], ground: dict[str, Any],
            boxes: list[dict[str, Any]] | None = None) -> Image.Image:
    """Gray film with translucent organ masks (left) beside the top finding's heatmap (right); radiologist
    boxes (white) and the heatmap peak (cyan cross) on the right when given."""
    gray = stretch_washed_out(decode_path(path).pixels, WASHED_OUT_SPAN)  # (H, W) [0, 1] as the model saw it
    base = np.repeat(gray[..., None], 3, axis=2) * 255.0  # (H, W, 3)
    masks = base.copy()
    for mask in segment["masks"]:
        colour = np.array(COLOURS.get(mask["name"], (255, 255, 0)), dtype=np.float32)
        inside = _png(mask["png_base64"]) > 0.5  # (H, W)
        masks[inside] = 0.55 * masks[inside] + 0.45 * colour
    top = max(ground["findings"], key=lambda finding: finding["score"])
    heat = _png(top["heatmap"]["png_base64"])  # (H, W) in [0, 1]
    hot = np.stack([heat * 255.0, heat * 80.0, np.zeros_like(heat)], axis=2)
    heatmap = 0.6 * base + 0.4 * hot
    for box in boxes or []:
        _draw_box(heatmap, box["box"], (255, 255, 255))
    if boxes:
        _draw_cross(heatmap, int(top["peak"]["x"]), int(top["peak"]["y"]), (0, 255, 255))
    side_by_side = np.concatenate([masks, heatmap], axis=1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(side_by_side)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/examples"))
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--finding", default="pneumonia", help="finding whose heatmap is drawn")
    parser.add_argument("--boxes-csv", type=Path, default=None,
                        help="NIH-style manifest whose `boxes` are drawn (and pick the finding) per film")
    parser.add_argument("--max-width", type=int, default=1000,
                        help="shrink wider overlays to this width (keeps the PNGs in docs/ small)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = Settings(model_dir=args.model_dir, log_format="text")
    with TestClient(create_app(settings)) as client:
        for _ in range(600):  # bounded wait for warm-up (~1 min at most)
            if client.get("/health/ready").status_code == 200:
                break
            time.sleep(0.1)
        all_boxes = read_boxes(args.boxes_csv)
        for path in args.images:
            boxes = all_boxes.get(path.name, [])
            finding = str(boxes[0]["finding"]).lower() if boxes else args.finding
            segment = _post(client, "/segment", path, {"anatomy": list(COLOURS)})
            ground = _post(client, "/ground", path, {"findings": [finding]})
            target = args.out / f"{path.stem}_overlay.png"
            image = overlay(path, segment, ground, boxes)
            if image.width > args.max_width:
                height = max(1, round(image.height * args.max_width / image.width))
                image = image.resize((args.max_width, height), Image.Resampling.LANCZOS)
            image.save(target)
            scores = {f["name"]: round(f["score"], 3) for f in ground["findings"]}
            sys.stdout.write(f"{target} {scores}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
