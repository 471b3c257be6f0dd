"""`python -m tinyvit.bench --quick`: every section prints its rows with sane figures (no timing asserted)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tinyvit import bench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    # One thread: the figures do not matter here, and on a shared CI machine two intra-op
    # threads can take minutes where one takes seconds.
    proc = subprocess.run([sys.executable, "-m", "tinyvit.bench", "--quick", "--threads", "1",
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
                  "Time to 97% test accuracy on digits"):
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
    assert ceiling["ratio"] == pytest.approx(rows[1]["value"] / ceiling["value"])


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
