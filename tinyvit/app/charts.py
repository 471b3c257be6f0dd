"""Plotly figures for the app: training curves, top-k bars, confusion matrices.

Pure functions from run data (lists of metrics.jsonl rows, test_metrics.json) to
figures, so pages stay free of plotting details and the figures can be tested alone.
Fractions are shown as percentages, as the slides do.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .tables import class_name

# Every per-epoch value in metrics.jsonl, with its display name.
EPOCH_METRICS = {
    "train_loss": "Train loss", "val_loss": "Val loss",
    "train_accuracy": "Train accuracy", "val_accuracy": "Val accuracy",
    "val_f1": "Val F1", "val_recall": "Val recall", "val_precision": "Val precision",
    "val_mcc": "Val MCC", "lr": "Learning rate", "epoch_seconds": "Seconds per epoch",
    "images_per_second": "Images per second",
}
# Values stored as fractions in [0, 1] (MCC in [-1, 1]) and shown in percent.
PERCENT = {"train_accuracy", "val_accuracy", "val_f1", "val_recall", "val_precision", "val_mcc"}
TRAIN_COLOUR, VAL_COLOUR = "#1f77b4", "#ff7f0e"
# Legend under the plot: above it, it collides with subplot titles.
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
              legend=dict(orientation="h", yanchor="top", y=-0.3, xanchor="center", x=0.5))


def _epoch_ticks(rows: Sequence[Mapping], epochs: int | None = None) -> dict:
    """Whole epochs only (plotly would label 0.5, 1.5, … on a two-epoch run); with `epochs`,
    the axis spans the whole run, so a live chart shows how far training has come."""
    n = max([r.get("epoch", 0) for r in rows] + [epochs or 0]) or 1
    ticks = dict(tickmode="linear", tick0=0, dtick=max(1, -(-n // 8)), rangemode="tozero")
    return {**ticks, "range": [0, epochs + 0.3]} if epochs else ticks


def label(key: str) -> str:
    return EPOCH_METRICS.get(key, key.replace("_", " ").capitalize())


def _values(rows: Sequence[Mapping], key: str) -> tuple[list, list]:
    pts = [(r["epoch"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "epoch" in r]
    scale = 100.0 if key in PERCENT else 1.0
    return [e for e, _ in pts], [v * scale for _, v in pts]


def _empty_note(fig: go.Figure, text: str) -> go.Figure:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font=dict(size=14, color="grey"))
    return fig


def loss_accuracy(rows: Sequence[Mapping], height: int = 320, epochs: int | None = None,
                  steps: Sequence[Mapping] = ()) -> go.Figure:
    """The live view: loss on the left, accuracy (%) on the right, over `epochs` (the run's
    length) when given. Training is the smoothed curve of `steps` (steps.jsonl) when the run
    has them, else its per-epoch points; validation is one point per epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy (%)"), horizontal_spacing=0.08)
    for col, (train, val, step_key) in enumerate((("train_loss", "val_loss", "loss_smooth"),
                                                  ("train_accuracy", "val_accuracy", "accuracy_smooth")), 1):
        if steps:
            scale = 100.0 if step_key.startswith("accuracy") else 1.0
            fig.add_trace(go.Scatter(x=[s["epoch"] for s in steps], y=[scale * s[step_key] for s in steps],
                                     mode="lines", name="train (smoothed)", legendgroup="train",
                                     showlegend=col == 1, line=dict(color=TRAIN_COLOUR)), row=1, col=col)
        else:
            x, y = _values(rows, train)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="train", legendgroup="train",
                                     showlegend=col == 1, line=dict(color=TRAIN_COLOUR)), row=1, col=col)
        x, y = _values(rows, val)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name="val", legendgroup="val",
                                 showlegend=col == 1, line=dict(color=VAL_COLOUR)), row=1, col=col)
        fig.update_xaxes(title_text="epoch", row=1, col=col, **_epoch_ticks(rows, epochs))
    fig.update_layout(height=height, **LAYOUT)
    if not rows and not steps:
        _empty_note(fig, "waiting for the first batches…")
    return fig


def metric_curves(rows: Sequence[Mapping], keys: Sequence[str], title: str = "",
                  height: int = 300) -> go.Figure:
    """Several per-epoch metrics of one run on one set of axes."""
    fig = go.Figure()
    for key in keys:
        x, y = _values(rows, key)
        # Train and validation keep the colours of the live chart; other metrics plotly's.
        colour = TRAIN_COLOUR if key.startswith("train_") else VAL_COLOUR if len(keys) == 2 else None
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=label(key), line=dict(color=colour)))
    percent = all(k in PERCENT for k in keys)
    fig.update_layout(title=title, height=height, xaxis_title="epoch",
                      yaxis_title="%" if percent else None, **LAYOUT)
    fig.update_xaxes(**_epoch_ticks(rows))
    if not rows:
        _empty_note(fig, "no finished epoch yet")
    return fig


def compare_curves(series: Mapping[str, Sequence[Mapping]], key: str, height: int = 380) -> go.Figure:
    """One metric, one line per run."""
    fig = go.Figure()
    for name, rows in series.items():
        x, y = _values(rows, key)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name))
    fig.update_layout(title=label(key) + (" (%)" if key in PERCENT else ""), height=height,
                      xaxis_title="epoch", **LAYOUT)
    fig.update_xaxes(**_epoch_ticks([r for rows in series.values() for r in rows]))
    return fig


def topk_bar(probs: Sequence[float], class_names: Sequence[str], k: int = 5,
             height: int | None = None) -> go.Figure:
    """The k most probable classes, most probable on top, in percent."""
    order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))[:k]
    names = [class_name(class_names, i) for i in order]
    values = [100 * float(probs[i]) for i in order]
    colours = ["#aec7e8"] * (len(values) - 1) + ["#1f77b4"]  # the top class stands out
    fig = go.Figure(go.Bar(x=values[::-1], y=names[::-1], orientation="h", marker_color=colours,
                           text=[f"{v:.1f}%" for v in values[::-1]], textposition="auto"))
    fig.update_layout(height=height or 60 + 32 * len(order), xaxis=dict(range=[0, 100], title="probability (%)"),
                      yaxis=dict(type="category"), showlegend=False,
                      **{**LAYOUT, "margin": dict(l=10, r=10, t=10, b=10)})
    return fig


CELL_TEXT_PX = 34  # below this cell height, numbers in the cells overlap and blur


def cell_text_fits(classes: int, side: int) -> bool:
    """Whether a value printed in each cell stays readable in a `side`-pixel-high matrix
    (about 90 pixels go to the title and axis labels)."""
    return (side - 90) / max(1, classes) >= CELL_TEXT_PX


def confusion_heatmap(matrix: Sequence[Sequence[float]], class_names: Sequence[str],
                      normalised: bool = False, title: str = "", height: int | None = None) -> go.Figure:
    """Rows are true classes, columns predictions; normalised = each row sums to 100%."""
    counts = [[float(v) for v in row] for row in matrix]
    if normalised:
        z = [[100 * v / s if (s := sum(row)) else 0.0 for v in row] for row in counts]
        text = [[f"{v:.0f}%" for v in row] for row in z]
    else:
        z = counts
        text = [[f"{int(v)}" for v in row] for row in z]
    names = [class_name(class_names, i) for i in range(len(counts))]
    side = height or min(700, 160 + 28 * len(names))
    show_text = cell_text_fits(len(names), side)  # else the values are in the hover
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale="Blues", text=text if show_text else None,
        texttemplate="%{text}" if show_text else None,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:.1f}<extra></extra>" if normalised
        else "true %{y}<br>predicted %{x}<br>%{z:d} images<extra></extra>",
        colorbar=dict(title="%" if normalised else "count")))
    fig.update_layout(title=title, height=side, xaxis=dict(title="predicted", type="category"),
                      yaxis=dict(title="true", type="category", autorange="reversed"),
                      **{**LAYOUT, "margin": dict(l=10, r=10, t=40 if title else 10, b=10)})
    return fig


def faithfulness_curves(curves: Mapping[str, Mapping[str, Sequence[float]]], titles: Mapping[str, str],
                        height: int = 340) -> go.Figure:
    """Mean deletion (left) and insertion (right) curves: the predicted class's probability
    against the fraction of pixels removed / revealed, most salient first. Baselines dashed."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("Deletion: most salient removed first (lower is better)",
                                        "Insertion: most salient revealed first (higher is better)"))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#7f7f7f"]
    for i, (method, pair) in enumerate(curves.items()):
        baseline = method in ("random", "centre")
        colour = "#555555" if baseline else palette[i % len(palette)]
        for col, which in enumerate(("deletion", "insertion"), 1):
            ys = list(pair.get(which, []))
            if not ys:
                continue
            xs = [100 * k / (len(ys) - 1) for k in range(len(ys))]
            fig.add_trace(go.Scatter(x=xs, y=[100 * y for y in ys], mode="lines", name=titles.get(method, method),
                                     legendgroup=method, showlegend=col == 1,
                                     line=dict(color=colour, dash="dash" if baseline else "solid",
                                               width=1.5 if baseline else 2)), row=1, col=col)
    fig.update_xaxes(title_text="% of pixels", range=[0, 100])
    fig.update_yaxes(title_text="probability of the predicted class (%)", range=[0, 100], col=1)
    fig.update_yaxes(range=[0, 100], col=2)
    fig.update_layout(height=height, **{**LAYOUT, "legend": dict(orientation="h", yanchor="top", y=-0.25,
                                                                  xanchor="center", x=0.5)})
    fig.update_annotations(font_size=12)
    return fig
