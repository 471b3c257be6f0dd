"""Test accuracy against training-set size: Compare draws it when the chosen runs were
trained on different numbers of images, so the slides' remark that a ViT needs more data
than a CNN can be seen (tinyvit.tools.study's scaling rows make such runs)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from ..runs import Run, RunError
from .tables import model_title
from .charts import LAYOUT


@dataclass(frozen=True)
class Point:
    run: str
    model: str
    dataset: str
    train_images: int
    accuracy: float   # test accuracy, a fraction


def points(runs: Sequence[Run]) -> list[Point]:
    """One point per run that has a test accuracy and a recorded training-set size."""
    found = []
    for run in runs:
        try:
            cfg, test = run.config(), run.test_metrics() or {}
        except RunError:
            continue
        size = (cfg.get("sizes") or {}).get("train")
        accuracy = test.get("accuracy")
        if isinstance(size, int) and size > 0 and isinstance(accuracy, (int, float)):
            found.append(Point(run.name, model_title(cfg), str(cfg.get("dataset_title") or cfg.get("dataset")),
                               size, float(accuracy)))
    return found


def worth_drawing(found: Sequence[Point]) -> bool:
    """Two or more sizes of one dataset: otherwise the chart has no x-axis to speak of."""
    return len({p.dataset for p in found}) == 1 and len({p.train_images for p in found}) > 1


def chart(found: Sequence[Point], height: int = 380) -> go.Figure:
    """One line per model, its runs ordered by training-set size (log scale)."""
    fig = go.Figure()
    for model in sorted({p.model for p in found}):
        line = sorted((p for p in found if p.model == model), key=lambda p: p.train_images)
        fig.add_trace(go.Scatter(
            x=[p.train_images for p in line], y=[100 * p.accuracy for p in line], mode="lines+markers",
            name=model, text=[p.run for p in line],
            hovertemplate="%{text}<br>%{x:,} training images<br>test accuracy %{y:.1f}%<extra></extra>"))
    sizes = sorted({p.train_images for p in found})
    # Ticks at the measured sizes: plotly's own log ticks read "2, 3, … 10k" between them.
    fig.update_layout(height=height, xaxis_type="log", xaxis_title="training images (log scale)",
                      xaxis=dict(tickvals=sizes, ticktext=[f"{n:,}" for n in sizes]),
                      yaxis_title="test accuracy (%)", **LAYOUT)
    return fig
