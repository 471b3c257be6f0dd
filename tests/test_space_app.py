"""The app on a Hugging Face Space (SPACE_ID set), through AppTest: the training caps in the
form and in tinyvit.app.jobs, the disk notice on Home and Train, and runs that only the browser
that launched them (or the Space's owner) may stop, resume or delete."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from test_app import REPO, app_env, assert_clean, button, page, set_tiny_form, stop_all, texts, wait_until  # noqa: F401
from tinyvit.app import jobs, owner, space
from tinyvit.training.config import ConfigError, TrainConfig
from tinyvit.runs import Run, list_runs

ADMIN = "the-owners-admin-token-0123"


@pytest.fixture
def on_space(app_env, monkeypatch):
    for name in space.ENV_OVERRIDES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(owner.ADMIN_ENV, raising=False)
    monkeypatch.setenv("SPACE_ID", "alice/tinyvit-lab")
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "alice")
    return monkeypatch


@pytest.fixture
def finished_run(app_env, tiny_runs) -> Run:
    shutil.copytree(tiny_runs["cnn"], app_env / "runs" / "tiny-cnn")
    return Run(app_env / "runs" / "tiny-cnn")


def visitor(token: str | None = None, path: str = "pages/train.py") -> AppTest:
    """A browser session; `token` is what its URL carries (a refresh of an owner's tab)."""
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
    if token:
        at.query_params[ "owner"] = token
    at.switch_page(path)
    return at.run()


def labels(at: AppTest) -> set[str]:
    return {b.label for b in at.button}


# -- issue 8.3: caps and notice -------------------------------------------------------------
def test_home_and_train_say_the_disk_is_not_persistent(on_space):
    for path in (None, "pages/train.py"):
        at = page(path)
        assert_clean(at)
        assert "not persistent" in texts(at.warning), path
        assert "30 epochs, 2 CPU thread(s) and 1 job(s)" in texts(at.warning), path


def test_off_a_space_there_is_no_notice_and_no_cap(app_env, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    at = page("pages/train.py")
    assert "not persistent" not in texts(at.warning)
    at.selectbox(key="tf_dataset").set_value("cifar10").run()
    assert at.number_input(key="tf_epochs").value == 100


def test_the_train_form_holds_the_space_caps(on_space):
    at = page("pages/train.py")
    assert_clean(at)
    epochs, threads = at.number_input(key="tf_epochs"), at.number_input(key="tf_threads")
    assert (epochs.proto.max, threads.proto.max) == (30, 2)
    # CIFAR-10's 100 epochs (the slides) become the Space's 30.
    at.selectbox(key="tf_dataset").set_value("cifar10").run()
    assert_clean(at)
    assert at.number_input(key="tf_epochs").value == 30
    at.selectbox(key="tf_preset").set_value("seed-stl10-tinyvit").run()
    assert at.number_input(key="tf_epochs").value == 30


def test_jobs_apply_the_caps_whatever_the_form_sent(on_space, app_env):
    with pytest.raises(ConfigError, match="at most 30 epochs"):
        jobs.launch(TrainConfig(dataset="digits", epochs=31, subset=20))
    with pytest.raises(ConfigError, match="at most 2 CPU thread"):
        jobs.launch(TrainConfig(dataset="digits", epochs=2, threads=8, subset=20))
    assert list((app_env / "runs").iterdir()) == []
    capped = jobs.apply_caps(TrainConfig(dataset="cifar10"))  # its default: 100 epochs, all cores
    assert (capped.epochs, capped.threads) == (30, 2)
    on_space.setenv("TINYVIT_MAX_JOBS", "1")
    assert jobs.max_jobs() == 1 and jobs._slots(4) == 1
    on_space.delenv("SPACE_ID")
    on_space.delenv("TINYVIT_MAX_JOBS")
    assert jobs.apply_caps(TrainConfig(dataset="cifar10")) == TrainConfig(dataset="cifar10")
    assert jobs._slots(4) == 4


# -- issue 8.4: a run belongs to the browser that launched it -------------------------------
def test_only_the_launching_browser_controls_its_run(on_space, app_env):
    root = app_env / "runs"
    alice = visitor()
    token = alice.query_params["owner"]
    token = token[0] if isinstance(token, list) else token
    assert owner.valid_token(token)
    set_tiny_form(alice, epochs=30)
    button(alice, "Launch training").click().run()
    assert_clean(alice)
    run = list_runs(root)[0]
    try:
        assert owner.recorded_owner(run) == owner.token_hash(token)
        assert token not in run.file(owner.OWNER_FILE).read_text()
        assert wait_until(lambda: run.status()["state"] == "running", alice, timeout=120)
        alice.run()
        assert "Stop" in labels(alice)
        # Another visitor: the same run, read-only.
        bob = visitor()
        assert bob.selectbox(key="picker_train").value == str(run.path)
        assert "Stop" not in labels(bob)
        assert "Launched from another browser" in texts(bob.caption)
        # A refresh (or a second tab) of Alice's browser keeps the right.
        again = visitor(token)
        assert "Stop" in labels(again)
        button(again, "Stop").click().run()
        assert wait_until(lambda: run.status()["state"] == "stopped", again, timeout=60)
        again.run()
        assert {"Resume", "Yes, delete"} <= labels(again)
        bob.run()
        assert not {"Resume", "Yes, delete"} & labels(bob)
    finally:
        stop_all(root)


def test_the_admin_token_unlocks_every_run(on_space, finished_run):
    owner.record_owner(finished_run, owner.new_token())  # someone else's
    at = visitor()
    assert "Yes, delete" not in labels(at)
    assert "Admin token" not in [t.label for t in at.text_input]  # no admin token set on this Space
    on_space.setenv(owner.ADMIN_ENV, ADMIN)
    at = visitor()
    at.text_input(key="space_admin").input("a guess").run()
    assert "not this Space's admin token" in texts(at.error)
    assert "Yes, delete" not in labels(at)
    at.text_input(key="space_admin").input(ADMIN).run()
    assert_clean(at)
    button(at, "Yes, delete").click().run()
    assert not finished_run.path.exists()


def test_a_run_without_an_owner_is_read_only_on_a_space_and_free_elsewhere(on_space, finished_run):
    at = visitor()
    assert "Yes, delete" not in labels(at)  # trained before, or from the command line
    on_space.delenv("SPACE_ID")
    at = visitor()
    assert "Yes, delete" in labels(at)
    assert "owner" not in at.query_params  # off a Space, no token at all


def test_push_to_hub_suggests_the_space_owners_namespace(on_space, finished_run):
    from tinyvit import hub
    on_space.setattr(hub, "hub_token", lambda: "hf_test_token")
    at = page("pages/metrics.py")
    assert_clean(at)
    assert at.text_input(key="hub_push_repo_metrics").value == "alice/tiny-cnn"
    home = page()
    assert "not persistent" in texts(home.warning) and "HF_TOKEN" not in texts(home.warning)
