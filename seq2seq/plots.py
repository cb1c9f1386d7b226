"""Figures for people: attention heatmaps and learning curves.

Shared by the TensorBoard images of a run (`training/run_logger.py`) and the sweep report
(`compare.py`). Figures are built with matplotlib's object API on the Agg canvas, never pyplot,
so nothing needs a display and no figure outlives its caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# inches per source/target token in a heatmap, and the bounds a figure side stays within
_CELL, _MIN_SIDE, _MAX_SIDE = 0.28, 2.5, 12.0
_DPI = 100


def draw_attention(
    ax: Axes,
    weights: Sequence[Sequence[float]],
    source: Sequence[str],
    target: Sequence[str],
    title: str = "",
    sure: Sequence[Sequence[int]] = (),
    possible: Sequence[Sequence[int]] = (),
) -> None:
    """Heatmap of attention `weights` (T, S): target tokens down the rows, source tokens along
    the columns, 0 white and 1 black, so panels of different runs compare by eye. Gold links
    (source, target) are drawn on it: `sure` as red squares, `possible` as small red dots."""
    matrix = np.asarray(weights, dtype=np.float32)
    if matrix.shape != (len(target), len(source)):
        raise ValueError(
            f"attention weights must be (len(target), len(source)) = "
            f"({len(target)}, {len(source)}), got {matrix.shape}"
        )
    ax.imshow(matrix, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(source)), labels=list(source), rotation=90, fontsize=8)
    ax.set_yticks(range(len(target)), labels=list(target), fontsize=8)
    ax.tick_params(length=0)
    sure_set = {tuple(link) for link in sure}
    _draw_links(ax, sure, marker="s", size=60)
    _draw_links(ax, [link for link in possible if tuple(link) not in sure_set], "o", 12)
    ax.set_xlabel("source", fontsize=8)
    ax.set_ylabel("translation", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)


def _draw_links(ax: Axes, links: Sequence[Sequence[int]], marker: str, size: float) -> None:
    if len(links):
        columns, rows = zip(*links)
        ax.scatter(columns, rows, s=size, marker=marker, facecolors="none", edgecolors="red")


def attention_figure(
    weights: Sequence[Sequence[float]],
    source: Sequence[str],
    target: Sequence[str],
    title: str = "",
    sure: Sequence[Sequence[int]] = (),
    possible: Sequence[Sequence[int]] = (),
) -> Figure:
    """One heatmap, sized to its sentence pair, with gold links if given."""
    figure = Figure(figsize=(_side(len(source)) + 1.0, _side(len(target)) + 1.0), dpi=_DPI)
    draw_attention(figure.add_subplot(), weights, source, target, title, sure, possible)
    figure.tight_layout()
    return figure


def attention_grid(panels: Sequence[tuple[str, dict]], columns: int = 4) -> Figure:
    """One heatmap per (title, example) side by side; an example has `weights`, `source` and
    `target` as in a run's attention.json, and gold links `sure` and `possible` when it comes
    from a gold-aligned set (`python -m seq2seq.align`'s examples.json)."""
    if not panels:
        raise ValueError("attention_grid needs at least one panel, got none")
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    width = max(_side(len(example["source"])) for _, example in panels) + 1.0
    height = max(_side(len(example["target"])) for _, example in panels) + 1.2
    figure = Figure(figsize=(width * columns, height * rows), dpi=_DPI)
    for i, (title, example) in enumerate(panels):
        ax = figure.add_subplot(rows, columns, i + 1)
        draw_attention(
            ax,
            example["weights"],
            example["source"],
            example["target"],
            title,
            example.get("sure", ()),
            example.get("possible", ()),
        )
    figure.tight_layout()
    return figure


# a validation point of a run: (updates, training minutes, validation BLEU)
CurvePoint = tuple[float, float, float]


def learning_curves(curves: Mapping[str, Sequence[Sequence[CurvePoint]]]) -> Figure:
    """Validation BLEU against updates (left) and against training minutes (right): one colour
    per variant, one line per run (seeds of a variant share its colour, so their spread shows
    as a band of lines). Updates compare what each variant learns per step, minutes what it
    learns per unit of this machine's time."""
    figure = Figure(figsize=(12.0, 4.5), dpi=_DPI)
    by_updates, by_time = figure.subplots(1, 2, sharey=True)
    for colour, (variant, runs) in zip(_colours(len(curves)), curves.items()):
        for i, points in enumerate(runs):
            updates, minutes, bleu = zip(*points) if points else ((), (), ())
            style = {"marker": "o", "markersize": 3, "color": colour}
            by_updates.plot(updates, bleu, label=variant if i == 0 else None, **style)
            by_time.plot(minutes, bleu, **style)
    by_updates.set_xlabel("updates")
    by_time.set_xlabel("training time (minutes, validation included)")
    by_updates.set_ylabel("validation BLEU (greedy)")
    for ax in (by_updates, by_time):
        ax.grid(alpha=0.3)
    by_updates.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def to_rgb_array(figure: Figure) -> np.ndarray:
    """The rendered figure as (H, W, 3) uint8, e.g. for `SummaryWriter.add_image`."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI)
    return path


def _side(tokens: int) -> float:
    return min(max(_CELL * tokens, _MIN_SIDE), _MAX_SIDE)


def _colours(n: int) -> list:
    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]
