"""Plotly figures for the comparison views: who wins per class, the mean attention
distance, mosaics of small maps, smoothed curves over epochs or time, a confusion matrix
at one epoch of the timeline. Pure functions from arrays to figures."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .charts import LAYOUT, PERCENT, label
from .tables import class_name

A_COLOUR, B_COLOUR = "#1f77b4", "#d62728"


def wins_bar(only_a: Sequence[int], only_b: Sequence[int], class_names: Sequence[str], name_a: str,
             name_b: str) -> go.Figure:
    """Per true class: images only A gets right (up) and only B gets right (down)."""
    names = [class_name(class_names, i) for i in range(len(only_a))]
    fig = go.Figure([
        go.Bar(x=names, y=list(only_a), name=f"only {name_a} right", marker_color=A_COLOUR),
        go.Bar(x=names, y=[-v for v in only_b], name=f"only {name_b} right", marker_color=B_COLOUR,
               customdata=list(only_b), hovertemplate="%{x}: %{customdata} images<extra></extra>"),
    ])
    fig.update_layout(barmode="relative", height=320, yaxis_title="images", xaxis=dict(type="category"),
                      **LAYOUT)
    return fig


def attention_distance(dist: np.ndarray, img_size: int) -> go.Figure:
    """One marker per head, layer on x: the ViT paper's figure 7 (right)."""
    layers, heads = dist.shape
    fig = go.Figure()
    for h in range(heads):
        fig.add_trace(go.Scatter(x=np.arange(1, layers + 1), y=dist[:, h], mode="markers",
                                 name=f"head {h + 1}", marker=dict(size=10)))
    fig.update_layout(height=360, xaxis=dict(title="layer", dtick=1),
                      yaxis=dict(title="mean attention distance (pixels)", range=[0, img_size * 0.75]),
                      **LAYOUT)
    return fig


def map_mosaic(maps: np.ndarray, zmin: float | None = None, zmax: float | None = None,
               colorscale: str = "Viridis", height: int = 460, title: str = "") -> go.Figure:
    """(R, C, h, w) small maps in an R×C grid, one pixel of gap, as one heatmap."""
    r, c, h, w = maps.shape
    canvas = np.full((r * (h + 1) - 1, c * (w + 1) - 1), np.nan)
    for i in range(r):
        for j in range(c):
            canvas[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = maps[i, j]
    fig = go.Figure(go.Heatmap(z=canvas, colorscale=colorscale, zmin=zmin, zmax=zmax,
                               hovertemplate="%{z:.2f}<extra></extra>", colorbar=dict(thickness=12)))
    fig.update_layout(height=height, title=title, xaxis=dict(visible=False, constrain="domain"),
                      yaxis=dict(visible=False, autorange="reversed", scaleanchor="x"),
                      **{**LAYOUT, "margin": dict(l=10, r=10, t=40 if title else 10, b=10)})
    return fig


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's exponential moving average, debiased so the first points are not pulled
    to zero; weight 0 leaves the values as they are."""
    out, avg, norm = [], 0.0, 0.0
    for v in values:
        avg = weight * avg + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(avg / norm if norm else v)
    return out


def _x(rows: Sequence[Mapping], keys: list[int], x_axis: str) -> list[float]:
    if x_axis == "epoch":
        return [rows[i]["epoch"] for i in keys]
    elapsed = np.cumsum([float(r.get("epoch_seconds") or 0) for r in rows])
    return [float(elapsed[i]) / (60 if x_axis == "minutes" else 1) for i in keys]


def curves(series: Mapping[str, Sequence[Mapping]], keys: Sequence[str], weight: float = 0.0,
           x_axis: str = "epoch", height: int = 320, title: str = "") -> go.Figure:
    """Metrics of one or several runs over epochs or over training time (the sum of the
    epochs' seconds), smoothed with `weight`; the raw values stay as faint markers."""
    fig = go.Figure()
    colours = iter(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                    "#7f7f7f", "#bcbd22", "#17becf"] * 4)
    for name, rows in series.items():
        for key in keys:
            found = [i for i, r in enumerate(rows) if isinstance(r.get(key), (int, float)) and "epoch" in r]
            scale = 100.0 if key in PERCENT else 1.0
            y = [rows[i][key] * scale for i in found]
            x = _x(rows, found, x_axis)
            colour = next(colours)
            shown = label(key) if len(series) == 1 else (name if len(keys) == 1 else f"{name} · {label(key)}")
            if weight > 0:
                fig.add_trace(go.Scatter(x=x, y=y, mode="markers", marker=dict(color=colour, size=4),
                                         opacity=0.3, showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=x, y=smooth(y, weight), mode="lines", name=shown,
                                     line=dict(color=colour)))
    xtitle = {"epoch": "epoch", "seconds": "training time (s)", "minutes": "training time (min)"}[x_axis]
    fig.update_layout(title=title, height=height, xaxis_title=xtitle,
                      yaxis_title="%" if all(k in PERCENT for k in keys) else None, **LAYOUT)
    return fig


def confusion_at(matrix: np.ndarray, class_names: Sequence[str], title: str) -> go.Figure:
    """The validation confusion matrix of one timeline epoch, normalised per true class."""
    from .charts import confusion_heatmap
    return confusion_heatmap(matrix.tolist(), class_names, normalised=True, title=title, height=380)
