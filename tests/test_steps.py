"""Issue 8.10: training loss and accuracy every few batches (steps.jsonl, smoothed), plotted
live with the per-epoch validation points; the numbers beside the chart are its last points."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from test_app import app_env, page  # noqa: F401
from tinyvit.app import charts
from tinyvit.runs import Run
from tinyvit.training.steps import STEPS, StepLog, read_steps, truncate


@pytest.fixture
def cnn_run(app_env, tiny_runs) -> Run:
    shutil.copytree(tiny_runs["cnn"], app_env / "runs" / "tiny-cnn")
    return Run(app_env / "runs" / "tiny-cnn")


def test_the_trainer_logs_every_batch_of_a_short_epoch(tiny_runs):
    run = Run(tiny_runs["cnn"])
    steps, rows = read_steps(run), run.metrics()
    batches = math.ceil(run.config()["sizes"]["train"] / run.config()["batch_size"])
    assert len(steps) == len(rows) * batches  # a short epoch: one line per batch
    at = [s["epoch"] for s in steps]
    assert at == sorted(at) and at[0] == pytest.approx(1 / batches, abs=1e-3) and at[-1] == len(rows)
    assert all(0 <= s["accuracy_smooth"] <= 1 and s["loss_smooth"] > 0 for s in steps)
    # Each epoch's lines cover its batches: their mean loss is the epoch's train loss.
    first = steps[:batches]
    assert sum(s["loss"] for s in first) / batches == pytest.approx(rows[0]["train_loss"], rel=0.15)


def test_a_long_epoch_gets_about_twenty_smoothed_points(tmp_path):
    run = Run(tmp_path)
    log = StepLog(run, steps_per_epoch=200)
    losses = [2.0 - i / 200 for i in range(200)]
    for b, loss in enumerate(losses, 1):
        log.add(0, b, torch.tensor(loss * 32), torch.tensor(16), 32)
    steps = read_steps(run)
    assert len(steps) == 20 and steps[-1]["epoch"] == 1.0
    assert steps[0]["loss_smooth"] == pytest.approx(steps[0]["loss"])  # debiased: no pull towards 0
    assert all(s["accuracy"] == 0.5 for s in steps)
    # Smoothed lags the falling raw loss, and stays between it and the start.
    assert all(s["loss"] <= s["loss_smooth"] <= 2.0 for s in steps)


def test_bad_lines_are_skipped_and_a_resume_drops_the_replayed_steps(tmp_path):
    run = Run(tmp_path)
    good = [{"epoch": e, "loss": 1.0, "accuracy": 0.5, "loss_smooth": 1.0, "accuracy_smooth": 0.5}
            for e in (0.5, 1.0, 1.5, 2.0, 2.5)]
    lines = [json.dumps(g) for g in good] + ["[1, 2]", '{"epoch": "x"}', '{"epoch": 3', "NaN"]
    run.file(STEPS).write_text("\n".join(lines) + "\n")
    assert read_steps(run) == good
    truncate(run, 2)
    assert [s["epoch"] for s in read_steps(run)] == [0.5, 1.0, 1.5, 2.0]
    assert read_steps(Run(tmp_path / "missing")) == []


def test_the_chart_draws_smoothed_training_and_per_epoch_validation(tiny_runs):
    run = Run(tiny_runs["cnn"])
    rows, steps = run.metrics(), read_steps(run)
    fig = charts.loss_accuracy(rows, epochs=2, steps=steps)
    train = [t for t in fig.data if t.legendgroup == "train"]
    val = [t for t in fig.data if t.legendgroup == "val"]
    assert [len(t.x) for t in train] == [len(steps)] * 2 and all(t.mode == "lines" for t in train)
    assert [list(t.x) for t in val] == [[1, 2]] * 2
    assert train[1].y[-1] == pytest.approx(100 * steps[-1]["accuracy_smooth"])
    # A run from before steps.jsonl: the per-epoch training points, as before.
    old = charts.loss_accuracy(rows, epochs=2)
    assert [list(t.x) for t in old.data if t.legendgroup == "train"] == [[1, 2]] * 2


def chart_traces(at) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def test_the_numbers_beside_the_live_chart_are_its_last_points(cnn_run):
    at = page("pages/train.py")
    at.selectbox(key="picker_train").set_value(str(cnn_run.path)).run()
    numbers = {m.label: m.value for m in at.metric}
    traces = chart_traces(at)
    train_loss = next(t for t in traces if t["legendgroup"] == "train")
    train_acc = [t for t in traces if t["legendgroup"] == "train"][1]
    val_acc = [t for t in traces if t["legendgroup"] == "val"][1]
    assert numbers["Train loss"] == f"{train_loss['y'][-1]:.3f}"
    assert numbers["Train accuracy"] == f"{train_acc['y'][-1]:.1f}%"
    assert numbers["Val accuracy"] == f"{val_acc['y'][-1]:.1f}%"
    assert len(train_loss["x"]) == len(read_steps(cnn_run)) > len(cnn_run.metrics())
    # The same run without steps.jsonl (an older run) still reads, from its epochs.
    cnn_run.file(STEPS).unlink()
    at.run()
    numbers = {m.label: m.value for m in at.metric}
    assert numbers["Train loss"] == f"{cnn_run.metrics()[-1]['train_loss']:.3f}"
    assert [t["x"] for t in chart_traces(at) if t["legendgroup"] == "train"][0] == [1, 2]
