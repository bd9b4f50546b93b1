"""PNG figures of an evaluation: ROC curves and heat-map overlays.

Uses matplotlib's object API (`Figure` + Agg canvas) rather than pyplot: no global figure state and no
GUI backend is touched, so it is safe in servers, tests and headless CI.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import NDArray
from sklearn.metrics import roc_curve


def plot_roc_curves(
    curves: Mapping[str, tuple[NDArray[np.int64], NDArray[np.float64]]], title: str, path: Path
) -> Path:
    """One ROC curve per finding (name -> (labels 0/1, scores)); findings with one class are skipped."""
    figure = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    plotted = 0
    for name, (labels, scores) in curves.items():
        if labels.size == 0 or labels.min() == labels.max():
            continue
        plotted += 1
        fpr, tpr, _ = roc_curve(labels, scores)
        area = float(np.trapezoid(tpr, fpr))
        axes.plot(fpr, tpr, label=f"{name} (AUROC {area:.3f}, n={labels.size})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    if plotted:
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(0.5, 0.5, "no finding has both classes", ha="center", va="center")
    figure.savefig(path)
    return path


def plot_overlay(
    image: NDArray[np.float32], heatmap: NDArray[np.float32], region: NDArray[np.bool_] | None,
    title: str, path: Path,
) -> Path:
    """Gray image with a semi-transparent min-max normalised heat map and the region's outline."""
    figure = Figure(figsize=(4, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
    low, high = float(heatmap.min()), float(heatmap.max())
    normalised = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    axes.imshow(normalised, cmap="jet", alpha=0.4, vmin=0.0, vmax=1.0)
    if region is not None and region.any():
        axes.contour(region.astype(np.float32), levels=[0.5], colors="white", linewidths=1.0)
    axes.set_title(title, fontsize="small")
    axes.set_axis_off()
    figure.savefig(path, bbox_inches="tight")
    return path


def plot_reliability(
    tables: Mapping[str, tuple[float, list[tuple[float, float, int]]]], title: str, path: Path
) -> Path:
    """Reliability diagram per finding (name -> (ECE, [(mean score, observed rate, count)])), one panel
    each: points on the diagonal are calibrated probabilities; the ECE is in each panel's title."""
    names = list(tables)
    columns = max(1, min(4, len(names)))
    rows = max(1, -(-len(names) // columns))
    figure = Figure(figsize=(3 * columns, 3 * rows), dpi=90)
    FigureCanvasAgg(figure)
    for index, name in enumerate(names):
        ece, table = tables[name]
        axes = figure.add_subplot(rows, columns, index + 1)
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        if table:
            confidence, observed, counts = zip(*table, strict=True)
            axes.scatter(confidence, observed, s=[8 + 40 * c / max(counts) for c in counts])
            axes.plot(confidence, observed, linewidth=0.8)
        axes.set(xlim=(0, 1), ylim=(0, 1), title=f"{name} (ECE {ece:.3f})")
        axes.title.set_fontsize("small")
    figure.suptitle(title, fontsize="small")
    figure.savefig(path, bbox_inches="tight")
    return path
