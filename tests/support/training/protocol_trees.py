"""Small official-layout trees written around REAL films of ../shared/data, with their known answers.

Each writer returns what the reader must find, computed here from the source files independently of the
readers (box arithmetic by hand, labels straight from the shared manifest).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

#: Shared-manifest column -> official CXR14 class name.
CXR14_COLUMNS: dict[str, str] = {
    "atelectasis": "Atelectasis", "cardiomegaly": "Cardiomegaly", "effusion": "Effusion",
    "infiltration": "Infiltration", "mass": "Mass", "nodule": "Nodule", "pneumonia": "Pneumonia",
    "pneumothorax": "Pneumothorax", "consolidation": "Consolidation", "edema": "Edema",
    "emphysema": "Emphysema", "fibrosis": "Fibrosis", "pleural_thickening": "Pleural_Thickening",
    "hernia": "Hernia",
}
#: Official box-list spelling of the shared manifest's box findings.
BOX_SPELLING = {"infiltration": "Infiltrate", "infiltrate": "Infiltrate"}


@dataclass
class Cxr14Tree:
    root: Path
    labels: dict[str, dict[str, int]] = field(default_factory=dict)  # stem -> class -> 0/1
    test: set[str] = field(default_factory=set)  # stems
    boxes: dict[str, list[tuple[str, float, float, float, float]]] = field(default_factory=dict)  # 512 px


def write_cxr14_tree(shared: Path, root: Path, *, n_plain: int = 12) -> Cxr14Tree:
    """Official CXR14 files for every boxed film of the shared subset and `n_plain` others: the shared
    val split is written as test_list.txt, boxes go back to the 1024 grid of the release, and the
    images keep their JPEG files under `images/` (Image Index says .png, as the release does)."""
    with (shared / "nih-cxr14" / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    boxed = [row for row in rows if row["boxes"].strip()]
    plain = [row for row in rows if not row["boxes"].strip()]
    train = [row for row in plain if row["split"] == "train"][:n_plain // 2]
    chosen = boxed + train + [row for row in plain if row["split"] == "val"][:n_plain - len(train)]
    tree = Cxr14Tree(root)
    (root / "images").mkdir(parents=True)
    entries: list[list[str]] = []
    box_lines: list[list[str]] = []
    test_lines: list[str] = []
    train_lines: list[str] = []
    for row in chosen:
        source = shared / "nih-cxr14" / row["image"]
        stem = source.stem
        (root / "images" / source.name).symlink_to(source)
        classes = [name for column, name in CXR14_COLUMNS.items() if row[column] == "1"]
        tree.labels[stem] = {name: int(name in classes) for name in CXR14_COLUMNS.values()}
        entries.append([f"{stem}.png", "|".join(classes) or "No Finding", "0", row["patient_id"], "50", "M",
                        "PA", "2500", "2048", "0.143", "0.143", ""])
        (test_lines if row["split"] == "val" else train_lines).append(f"{stem}.png")
        if row["split"] == "val":
            tree.test.add(stem)
        for item in json.loads(row["boxes"]) if row["boxes"].strip() else []:
            x0, y0, x1, y1 = item["box"]
            finding = item["finding"].strip().lower()
            name = CXR14_COLUMNS.get(finding.replace(" ", "_"), finding.capitalize())
            tree.boxes.setdefault(stem, []).append((name, x0, y0, x1 - x0, y1 - y0))
            spelled = BOX_SPELLING.get(finding, name.replace("_", " "))
            box_lines.append([f"{stem}.png", spelled, str(2 * x0), str(2 * y0), str(2 * (x1 - x0)),
                              str(2 * (y1 - y0)), "", "", ""])
    header = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
              "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]", ""]
    _write_csv(root / "Data_Entry_2017.csv", header, entries)
    box_header = ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "", "", ""]
    _write_csv(root / "BBox_List_2017.csv", box_header, box_lines)
    (root / "test_list.txt").write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    (root / "train_val_list.txt").write_text("\n".join(train_lines) + "\n", encoding="utf-8")
    return tree


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def nih_images(shared: Path, count: int) -> list[Path]:
    """The first `count` NIH films of the shared subset (real adult frontal JPEGs)."""
    return sorted((shared / "nih-cxr14" / "images").glob("*.jpg"))[:count]


#: RSNA patient -> the real DICOM it is given (NIH DX, SIIM CR JPEG baseline, highdicom DX).
RSNA_FILMS = {"p-a": "nih_gcp_DX_nofinding.dcm", "p-b": "siim_chest_jpeg_baseline.dcm",
              "p-c": "highdicom_dx_image.dcm"}
RSNA_LABELS = ("patientId,x,y,width,height,Target\n"
               "p-a,100,200,50,60,1\n"
               "p-a,600,220,80,90,1\n"
               "p-b,,,,,0\n"
               "p-c,300.5,310,40.5,20,1\n"
               "p-missing,,,,,0\n")


def write_rsna_tree(shared: Path, root: Path) -> Path:
    """stage_2_train_labels.csv + stage_2_train_images/<patientId>.dcm around real chest DICOMs."""
    images = root / "stage_2_train_images"
    images.mkdir(parents=True)
    for pid, name in RSNA_FILMS.items():
        (images / f"{pid}.dcm").symlink_to(shared / "dicom" / name)
    (root / "stage_2_train_labels.csv").write_text(RSNA_LABELS, encoding="utf-8")
    return root


def rectangle_rle(rows: range, columns: range, height: int) -> str:
    """Hand-made relative RLE of a rectangle: one run per column, the gap to the next column's run."""
    values = [f"{columns.start * height + rows.start} {len(rows)}"]
    values += [f"{height - len(rows)} {len(rows)}"] * (len(columns) - 1)
    return " ".join(values)


def write_siim_tree(shared: Path, root: Path) -> Path:
    """train-rle.csv (two regions on one film, -1 on another, a film not on disk) + DICOM folders."""
    series = root / "dicom-images-train" / "1.2.3" / "1.2.3.4"
    series.mkdir(parents=True)
    (series / "1.2.9.1.dcm").symlink_to(shared / "dicom" / "siim_chest_jpeg_baseline.dcm")
    (series / "1.2.9.2.dcm").symlink_to(shared / "dicom" / "nih_gcp_DX_nofinding.dcm")
    upper = rectangle_rle(range(100, 200), range(300, 400), 1024)
    lower = rectangle_rle(range(700, 750), range(600, 610), 1024)
    (root / "train-rle.csv").write_text(
        f"ImageId, EncodedPixels\n1.2.9.1, {upper}\n1.2.9.1, {lower}\n1.2.9.2, -1\n1.2.9.3, -1\n",
        encoding="utf-8")
    return root


MSCXR_HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
                "image_height", "split"]


def mscxr_paths(films: list[Path]) -> list[str]:
    """MIMIC-CXR-JPG relative paths the films are given."""
    return [f"files/p10/p1000000{i}/s5000000{i}/{film.stem}.jpg" for i, film in enumerate(films)]


def write_mscxr_tree(shared: Path, root: Path, phrases: tuple[str, str, str] = (
        "patchy opacity at the left base", "small left effusion", "enlarged heart")) -> list[Path]:
    """MS_CXR_Local_Alignment_v1.1.0.csv over two real NIH JPEGs (512 x 512, standing in for MIMIC-CXR-JPG
    files under mimic-cxr-jpg/) plus a row whose film is missing; `phrases` are the three phrases of the
    films' boxes (Pneumonia and Pleural Effusion on the first, test; Cardiomegaly on the second, val).
    Returns the two films."""
    films = nih_images(shared, 2)
    paths = mscxr_paths(films)
    for film, relative in zip(films, paths, strict=True):
        target = root / "mimic-cxr-jpg" / relative
        target.parent.mkdir(parents=True)
        target.symlink_to(film)
    rows = [
        ["d0", "Pneumonia", phrases[0], paths[0], "100", "200", "300", "100", "1024", "1024", "test"],
        ["d0", "Pleural Effusion", phrases[1], paths[0], "600", "700", "200", "150", "1024", "1024", "test"],
        ["d1", "Cardiomegaly", phrases[2], paths[1], "256", "512", "512", "256", "2048", "2048", "val"],
        ["d2", "Edema", "edema", "files/p11/p11/s1/none.jpg", "0", "0", "1", "1", "10", "10", "test"],
    ]
    _write_csv(root / "MS_CXR_Local_Alignment_v1.1.0.csv", MSCXR_HEADER, rows)
    return films
