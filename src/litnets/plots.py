"""Matplotlib figures shared by the TensorBoard callbacks and ``scripts/plot.py``.

matplotlib is imported on first use, so runs that draw nothing never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image(x: Tensor) -> np.ndarray:
    """(C, H, W) model input → (H, W) or (H, W, 3) in [0, 1] for display."""
    x = x.detach().float().cpu()
    x = (x - x.min()) / (x.max() - x.min() + 1e-12)
    return (x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)).numpy()


def image_grid(
    images: Tensor,
    titles: Sequence[str],
    wrong: Sequence[bool] | None = None,
    columns: int = 8,
) -> Figure:
    """Images with a caption each; captions of wrong predictions in red (D2L's predict_ch3)."""
    plt = _pyplot()
    rows = math.ceil(len(images) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(_image(images[i]), cmap="gray", interpolation="nearest")
        color = "red" if wrong is not None and wrong[i] else "black"
        ax.set_title(titles[i], fontsize=7, color=color)
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: Tensor, class_names: Sequence[str]) -> Figure:
    """Counts with true classes as rows, predictions as columns."""
    plt = _pyplot()
    matrix = matrix.detach().cpu()
    n = len(class_names)
    size = max(4.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max().item() / 2
    for i in range(n):
        for j in range(n):
            value = int(matrix[i, j])
            color = "white" if value > threshold else "black"
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    accuracy = matrix.diag().sum().item() / max(matrix.sum().item(), 1)
    ax.set_title(f"test confusion matrix\naccuracy {accuracy:.4f}", fontsize=10)
    fig.tight_layout()
    return fig


def regression_fit(x: Tensor, target: Tensor, prediction: Tensor, title: str) -> Figure:
    """1-D inputs: data and fitted curve over x. Otherwise: predicted against true."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    # numpy arrays: matplotlib's copy=False conversion of a tensor is deprecated by numpy 2
    x, target, prediction = (t.detach().float().cpu().numpy() for t in (x, target, prediction))
    if x.shape[1:] == (1,):
        order = x[:, 0].argsort()
        ax.scatter(x[order, 0], target[order, 0], s=4, color="tab:blue", label="data")
        ax.plot(x[order, 0], prediction[order, 0], color="tab:red", label="model")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    else:
        ax.scatter(target.flatten(), prediction.flatten(), s=6, alpha=0.6)
        low, high = target.min().item(), target.max().item()
        ax.plot([low, high], [low, high], color="gray", linestyle="--", label="y = ŷ")
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig


def learning_curves(
    runs: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]],
) -> Figure:
    """Loss and the second metric per epoch: one panel each, every run overlaid.

    ``runs`` maps a run name to ``{tag: [(epoch, value), ...]}``.
    """
    plt = _pyplot()
    metric = (
        "acc" if any("val/acc" in tags or "train/acc" in tags for tags in runs.values()) else "mse"
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, tags) in enumerate(runs.items()):
        color = colors[index % len(colors)]
        label = f"{name} " if len(runs) > 1 else ""
        for ax, quantity in zip(axes, ("loss", metric), strict=True):
            for split, style in (("train", "-"), ("val", "--")):
                points = tags.get(f"{split}/{quantity}")
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, color=color, label=f"{label}{split}")
            test = tags.get(f"test/{quantity}")
            if test:
                ax.axhline(test[-1][1], color=color, linestyle=":", label=f"{label}test")
    for ax, quantity in zip(axes, ("loss", metric), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(quantity)
        ax.set_title(quantity)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
