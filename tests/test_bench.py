"""`python -m tinyvit.tools.bench --quick`: every section prints its rows with sane figures (no timing asserted)."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch.nn as nn

from tinyvit.tools import bench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    # One thread: the figures do not matter here, and on a shared CI machine two intra-op
    # threads can take minutes where one takes seconds.
    proc = subprocess.run([sys.executable, "-m", "tinyvit.tools.bench", "--quick", "--threads", "1",
                           "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def finite_positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_table_names_the_machine_and_every_section(quick_bench):
    stdout, doc = quick_bench
    first = stdout.splitlines()[0]
    assert first.startswith("machine: ") and "cores" in first and "torch" in first and "threads" in first
    for title in ("Training throughput on CPU", "Whole epoch with data", "Prediction latency",
                  "Time to 97% test accuracy on digits", "Saliency maps on CPU"):
        assert title in stdout
    assert doc["table"] in stdout
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["torch"]


def test_training_rows_compare_every_model_to_the_slides_way(quick_bench):
    _, doc = quick_bench
    rows = [r for r in doc["rows"] if r["section"] == "train"]
    names = " | ".join(r["name"] for r in rows)
    for model in ("slides' way", "tinyvit: this project", "torchvision VisionTransformer", "cnn", "ceiling"):
        assert model in names
    assert rows[0]["ratio"] == 1.0
    for r in rows:
        assert r["unit"] == "img/s" and finite_positive(r["value"]) and finite_positive(r["ratio"])
    ceiling = rows[-1]
    assert 0.3 < ceiling["extra"]["gflop_per_image"] < 0.7  # ~0.5 GFLOP per training image


def test_epoch_predict_and_accuracy_rows_are_sane(quick_bench):
    _, doc = quick_bench
    by_section = {}
    for r in doc["rows"]:
        by_section.setdefault(r["section"], []).append(r)
    assert len(by_section["epoch"]) == 3
    assert all(finite_positive(r["value"]) and finite_positive(r["ratio"]) for r in by_section["epoch"])
    predict = {r["name"]: r["value"] for r in by_section["predict"]}
    assert len(predict) == 4 and all(finite_positive(v) for v in predict.values())
    assert predict["predict one uploaded image (p95)"] >= predict["predict one uploaded image (p50)"]
    accuracy = by_section["accuracy"]
    assert [r["name"].split(":")[0] for r in accuracy] == ["tinyvit", "cnn"]
    for r in accuracy:
        extra = r["extra"]
        assert finite_positive(extra["train_seconds"]) and 0 <= extra["best_accuracy"] <= 1
        # Either the target was reached (and the row gives the seconds) or the row says so.
        assert (r["value"] is not None) == extra["reached"]
        assert extra["reached"] or "not reached" in r["note"]


def test_only_runs_the_named_sections_and_refuses_unknown_ones(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert bench.main(["--quick", "--only", "predict", "--json", str(out), "--threads", "1"]) == 0
    doc = json.loads(out.read_text())
    assert {r["section"] for r in doc["rows"]} == {"predict"}
    with pytest.raises(SystemExit) as err:
        bench.main(["--only", "train,warp"])
    assert err.value.code == 2
    assert "unknown section warp" in capsys.readouterr().err


def test_real_data_rows_compare_recipes_to_their_targets(quick_bench):
    stdout, doc = quick_bench
    rows = [r for r in doc["rows"] if r["section"] == "real"]
    assert "Time to accuracy on Fashion-MNIST" in stdout
    assert [r["name"] for r in rows] == [
        "tinyvit, slides recipe: seconds to 90%", "tinyvit, fast recipe: seconds to 90%",
        "tinyvit-conv, fast recipe: seconds to 90%", "cnn, slides recipe: seconds to 92%",
        "cnn, fast recipe: seconds to 92%"]
    for r in rows:
        assert r["extra"]["target"] in (0.90, 0.92) and 0 <= r["extra"]["best_accuracy"] <= 1
        assert (r["value"] is not None) == r["extra"]["reached"]
    # The fast recipe's cosine is laid over the epochs its time holds: 4 for the slides' TinyViT,
    # 3 for tinyvit-conv, 2 for the CNN.
    assert [re.search(r"cosine over (\d+) epochs", r["note"]).group(1) for r in rows if "fast" in r["name"]] \
        == ["4", "3", "2"]


def test_bf16_rows_pair_each_model_with_its_float32_reference(quick_bench):
    from tinyvit.training.step import cpu_bf16_supported
    stdout, doc = quick_bench
    rows = [r for r in doc["rows"] if r["section"] == "bf16"]
    if not cpu_bf16_supported():
        assert len(rows) == 1 and "no native bf16" in rows[0]["note"]
        return
    assert "bf16 autocast on CPU (--cpu-bf16)" in stdout
    assert [r["name"] for r in rows] == [f"{m}, batch {b}, {t}" for m, b in (("cnn", 128), ("tinyvit-conv", 64),
                                                                           ("tinyvit", 64))
                                         for t in ("float32", "bf16")]
    for ref, bf16 in zip(rows[::2], rows[1::2]):
        assert ref["ratio"] == 1.0 and finite_positive(bf16["value"])
        assert bf16["ratio"] == pytest.approx(bf16["value"] / ref["value"])


def test_real_data_rows_are_skipped_with_a_note_without_the_data(monkeypatch):
    from tinyvit.data import idx_files
    monkeypatch.setattr(idx_files, "SYSTEM_DIRS", {})
    monkeypatch.chdir(REPO / "tests")        # no data/ folder here either
    rows = bench.real_rows(bench.Settings.quick())
    assert len(rows) == 1 and rows[0].value is None and "apt-get install dataset-fashion-mnist" in rows[0].note


# -- the figures' arithmetic, on a scripted clock (known inputs, known answers) -------------

class ScriptedClock:
    """bench's `time`, advanced only by the fake steps: each call takes the next duration."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def perf_counter(self) -> float:
        return self.now

    def step(self, name: str, durations: list[float]):
        durations = iter(durations)

        def run(x, y):
            self.calls.append(name)
            self.now += next(durations)
        return run


def test_training_rows_are_medians_of_repeats_taken_in_turns(monkeypatch):
    clock = ScriptedClock()
    # One warm-up step each, then three timed rounds of one step of a batch of 64.
    ref = clock.step("ref", [9.0, 1.0, 4.0, 2.0])   # 64, 16, 32 img/s: median 32 (mean 37.3)
    other = clock.step("other", [9.0, 0.5, 0.25, 1.0])  # 128, 256, 64 img/s: median 128
    monkeypatch.setattr(bench, "time", clock)
    monkeypatch.setattr(bench, "TRAIN_ROWS", [("ref", lambda: ref, "plain"), ("other", lambda: other, "plain")])
    monkeypatch.setattr(bench, "make_step", lambda step, kind, device, amp=False: step)
    rows = bench.throughput_rows(bench.Settings(batch=64, warmup=1, rounds=3, steps=1), bench.torch.device("cpu"),
                                 "train")
    assert [(r.name, r.value, r.ratio) for r in rows] == [("ref", 32.0, 1.0), ("other", 128.0, 4.0)]
    assert clock.calls == ["ref", "other"] * 4  # in turns: A, B, then A, B again


class ScriptedTrainer:
    """The engine as time_to_accuracy drives it: 8 batches an epoch of 1 s each; the test
    accuracy is 5% per batch trained so far, and each evaluation takes 100 s (not counted)."""

    def __init__(self, clock: ScriptedClock) -> None:
        self.clock, self.batches_done, self.steps_per_epoch = clock, 0, 8
        self.stop = types.SimpleNamespace(signalled=False)
        self.train_model = nn.Identity()
        self.step = types.SimpleNamespace(close=lambda: None)
        self.on_batch = None

    def train_epoch(self, epoch: int):
        for b in range(self.steps_per_epoch):
            self.clock.now += 1.0
            self.batches_done += 1
            self.on_batch(epoch, b + 1, self.steps_per_epoch)
            if self.stop.signalled:
                return None
        return {}

    def evaluate(self, x, y):
        self.clock.now += 100.0
        return {"accuracy": 0.05 * self.batches_done}


@pytest.fixture
def scripted_engine(monkeypatch):
    from tinyvit.training import loop, runner
    clock = ScriptedClock()
    monkeypatch.setattr(bench, "time", clock)
    data = types.SimpleNamespace(test_x=[], test_y=[])
    monkeypatch.setattr(runner, "load_data", lambda cfg, log: data)
    monkeypatch.setattr(runner, "build_for", lambda cfg, data: (None, None))
    monkeypatch.setattr(runner, "resolve_epochs", lambda cfg: 3)
    monkeypatch.setattr(loop, "Trainer", lambda *a, **k: ScriptedTrainer(clock))
    return types.SimpleNamespace(batch_size=64, lr=1e-3, schedule="cosine", cpu_bf16=False)


def test_time_to_accuracy_checks_within_epochs_and_excludes_evaluation(scripted_engine):
    # Checks after batches 2, 4, 6 and 8 of each epoch: 50% is first seen after batch 10,
    # a quarter into the second epoch, after 10 s of training (the 5 evaluations' 500 s excluded).
    row = bench.time_to_accuracy(scripted_engine, 0.5, 60.0, None, "real", "r", checks_per_epoch=4)
    assert row.value == 10.0 and row.extra["epochs"] == 1.25 and row.extra["reached"]
    assert row.note.startswith("epoch 1.25, 50.0%")
    assert row.extra["checks"] == [[e, t, pytest.approx(a)] for e, t, a in
                                   ((0.25, 2, 0.1), (0.5, 4, 0.2), (0.75, 6, 0.3), (1.0, 8, 0.4), (1.25, 10, 0.5))]
    # Checked only at epoch ends, the same run is seen at 50% after 16 s.
    once = bench.time_to_accuracy(scripted_engine, 0.5, 60.0, None, "real", "r", checks_per_epoch=1)
    assert (once.value, once.extra["epochs"]) == (16.0, 2)


def test_time_to_accuracy_stops_at_the_first_check_past_its_budget(scripted_engine):
    row = bench.time_to_accuracy(scripted_engine, 0.99, 5.0, None, "real", "r", checks_per_epoch=4)
    assert row.value is None and not row.extra["reached"]
    assert row.extra["train_seconds"] == 6.0 and row.extra["best_accuracy"] == pytest.approx(0.3)
    assert row.note.startswith("not reached: best 30.0% in 0.75 epochs, 6.0 s")


def test_ceiling_row_divides_the_matmul_peak_by_the_flops_of_an_image(monkeypatch):
    monkeypatch.setattr(bench, "matmul_peak", lambda seconds: 500.0)  # GFLOP/s
    monkeypatch.setattr(bench, "training_flops_per_image", lambda model: 0.5e9)
    row = bench.ceiling_row(bench.Settings(), tinyvit_rate=100.0, quick=True)
    assert (row.value, row.ratio) == (1000.0, 0.1)


def test_training_flops_count_forward_and_backward_matmuls():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3072, 16, bias=False), nn.Linear(16, 10, bias=False))
    # Forward and weight gradient of both layers, plus the input gradient of the second
    # (the first layer's input, the image, needs none): 2 FLOPs per multiply-add.
    assert bench.training_flops_per_image(model) == 2 * (2 * 3072 * 16) + 3 * (2 * 16 * 10)


def test_epoch_rows_take_the_median_of_their_repeats(monkeypatch):
    rates = {"project": iter([300.0, 100.0, 200.0]), "project_conv": iter([100.0, 50.0, 400.0]),
             "plain": iter([10.0, 30.0, 20.0])}
    monkeypatch.setattr(bench, "project_epoch", lambda model, images, labels, s: next(rates["project"]))
    monkeypatch.setattr(bench, "conventional_epoch",
                        lambda model, kind, images, labels, s: next(rates["project_conv" if kind == "project" else "plain"]))
    rows = bench.epoch_rows(bench.Settings(warmup=0, epoch_images=64, epoch_repeats=3))
    assert [(r.value, r.ratio) for r in rows] == [(100.0, 1.0), (200.0, 2.0), (20.0, 0.2)]


def test_timeline_rows_pair_each_epoch_with_and_without(quick_bench):
    stdout, doc = quick_bench
    rows = [r for r in doc["rows"] if r["section"] == "timeline"]
    assert "Saving the learning timeline" in stdout
    assert len(rows) >= 6 and len(rows) % 3 == 0
    for off, on, own in zip(rows[::3], rows[1::3], rows[2::3]):
        assert off["name"].endswith("without the timeline") and on["name"].endswith("with the timeline")
        assert off["ratio"] == 1.0 and finite_positive(on["ratio"])
        assert on["ratio"] == pytest.approx(on["value"] / off["value"])
        # The recording's own time, in ms, as a share of the epoch without it.
        assert own["name"].endswith("own time per epoch") and finite_positive(own["value"])
        assert own["ratio"] == pytest.approx(1 + own["value"] / 1000 / off["value"])
    assert any(r["name"].startswith("digits") and ", tinyvit:" in r["name"] for r in rows)


def test_views_rows_time_a_click_on_10000_predictions(quick_bench):
    _, doc = quick_bench
    rows = [r for r in doc["rows"] if r["section"] == "views"]
    assert len(rows) == 2 and "10,000 predictions" in rows[0]["name"] and "12 images" in rows[1]["name"]
    assert all(finite_positive(r["value"]) and r["unit"] == "ms" and "budget" in r["note"] for r in rows)
