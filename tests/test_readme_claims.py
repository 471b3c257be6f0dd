"""README promises that no other test file covers: each checked against the behaviour."""
from __future__ import annotations

import json

from tinyvit.runs import DEMO_ROOT, create_run, list_runs


def test_demo_runs_are_listed_after_your_own_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path))
    monkeypatch.delenv("TINYVIT_DEMO_RUNS", raising=False)
    demo_times = {p.name: json.loads((p / "status.json").read_text())["created_at"]
                  for p in DEMO_ROOT.iterdir() if p.is_dir()}
    # Own runs older than every demo run: sorted all together by date they would come last.
    for name, created in (("old", 1.0), ("newer", 2.0), ("middle", 1.5)):
        run = create_run(tmp_path, name, {"dataset": "digits", "model": "cnn"})
        run.write_status(created_at=created)
    assert min(demo_times.values()) > 2.0
    names = [r.name for r in list_runs()]
    demos_newest_first = sorted(demo_times, key=demo_times.get, reverse=True)
    assert names == ["newer", "middle", "old", *demos_newest_first]
