"""The app with a real Hub download: a run pushed to a local stand-in for the Hub (the FakeHub
of test_hub.py, which replaces only the network calls) is loaded from the Metrics page by its
repo id, and the page shows the run's own test metrics."""
from __future__ import annotations

from pathlib import Path

import pytest

from streamlit.testing.v1 import AppTest
from test_hub import fake_hub, make_run  # noqa: F401  (fake_hub is a fixture)

from tinyvit.hub import push_run
from tinyvit.runs import open_run

REPO = Path(__file__).resolve().parent.parent


def test_a_run_loaded_from_the_hub_shows_its_metrics(fake_hub, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TINYVIT_HUB_RUNS", str(tmp_path / "hub-runs"))
    monkeypatch.setenv("TINYVIT_DEMO_RUNS", "")
    path, _ = make_run(tmp_path / "pushed", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/tinyvit-digits")
    expected = open_run(path).test_metrics()

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    at.switch_page("pages/metrics.py")
    at.run()
    at.text_input(key="hub_repo_metrics").input("alice/tinyvit-digits")
    next(b for b in at.button if b.label == "Load").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    local = tmp_path / "hub-runs" / "alice--tinyvit-digits"
    assert at.selectbox(key="picker_metrics").value == str(local)
    assert open_run(local).readonly
    table = at.dataframe[0].value
    assert list(table.columns) == ["Accuracy", "F1", "Recall", "MCC", "Precision"]
    assert table.loc["test", "Accuracy"] == pytest.approx(100 * expected["accuracy"])
    assert table.loc["test", "MCC"] == pytest.approx(100 * expected["mcc"])
    assert fake_hub.downloads  # the files came through the (stand-in) Hub, not from disk
