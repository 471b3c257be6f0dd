"""Hub push/load round trips against a local folder standing in for the Hub (no network).

Only the calls that would reach huggingface.co are replaced (HfApi.create_repo,
upload_folder, repo_info, list_repo_tree and the per-file download); snapshot_download's
own logic -- cache layout, refs, offline fallback -- runs for real.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import shutil
import sys
import types
from pathlib import Path

import httpx2
import huggingface_hub._snapshot_download as snapshot_module
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.hf_api import RepoFile
from safetensors.torch import save_file

import train
from tinyvit import hub
from tinyvit.checkpoint import WEIGHTS, save_weights
from tinyvit.training.config import TrainConfig
from tinyvit.data import load_dataset
from tinyvit.hub import HubError, load_run_from_hub, push_run
from tinyvit.inference import load_run
from tinyvit.metrics import METRIC_NAMES, full_report
from tinyvit.models import build_model, count_parameters
from tinyvit.runs import DEMO_ROOT, RunError, create_run, delete_run, open_run
from tinyvit.samples import save_samples
from tinyvit.training.runner import build_for, run_config

HUB_URL = "https://huggingface.co"


class FakeHub:
    """Repos are folders under `root`; a repo's commit is the hash of its files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.reachable = True
        self.created: dict[str, bool] = {}
        self.downloads: list[str] = []

    def path(self, repo_id: str) -> Path:
        return self.root / repo_id

    def files(self, repo_id: str) -> list[Path]:
        base = self.path(repo_id)
        return sorted(p for p in base.rglob("*") if p.is_file())

    def commit(self, repo_id: str) -> str:
        h = hashlib.sha1()
        for f in self.files(repo_id):
            h.update(str(f.relative_to(self.path(repo_id))).encode() + f.read_bytes())
        return h.hexdigest()

    def _check(self, repo_id: str) -> None:
        if not self.reachable:
            raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")
        if not self.path(repo_id).is_dir():
            url = f"{HUB_URL}/api/models/{repo_id}"
            raise RepositoryNotFoundError(f"404 Client Error. Repository Not Found for url: {url}",
                                          response=httpx2.Response(404, request=httpx2.Request("GET", url)))

    # HfApi methods (first argument: the HfApi instance)
    def create_repo(self, api, repo_id, *, private=None, exist_ok=False, **kw):
        if not self.reachable:
            raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")
        self.path(repo_id).mkdir(parents=True, exist_ok=True)
        self.created[repo_id] = bool(private)
        return f"{HUB_URL}/{repo_id}"

    def upload_folder(self, api, *, repo_id, folder_path, delete_patterns=None, **kw):
        self._check(repo_id)
        for f in self.files(repo_id):
            rel = str(f.relative_to(self.path(repo_id)))
            if any(fnmatch.fnmatch(rel, pat) for pat in delete_patterns or []):
                f.unlink()
        shutil.copytree(folder_path, self.path(repo_id), dirs_exist_ok=True)
        return f"{HUB_URL}/{repo_id}/commit/{self.commit(repo_id)}"

    def repo_info(self, api, repo_id, **kw):
        self._check(repo_id)
        return types.SimpleNamespace(sha=self.commit(repo_id))

    def list_repo_tree(self, api, repo_id, **kw):
        self._check(repo_id)
        for f in self.files(repo_id):
            data = f.read_bytes()
            yield RepoFile(path=str(f.relative_to(self.path(repo_id))), size=len(data),
                           oid=hashlib.sha1(data).hexdigest())

    def hf_hub_download(self, repo_id, filename, *, revision, cache_dir, **kw):
        self._check(repo_id)
        self.downloads.append(f"{repo_id}/{filename}")
        dest = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(repo_id) / filename, dest)
        return str(dest)


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub")
    for name in ("create_repo", "upload_folder", "repo_info", "list_repo_tree"):
        method = getattr(fake, name)
        monkeypatch.setattr(HfApi, name, lambda api, *a, _m=method, **k: _m(api, *a, **k))
    monkeypatch.setattr(snapshot_module, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    return fake


_DATA = {}


def digits():
    if "d" not in _DATA:
        _DATA["d"] = load_dataset("digits", subset=3, seed=0)
    return _DATA["d"]


def make_run(root: Path, name: str, model: str = "tinyvit", seed: int = 0, **hparams) -> tuple[Path, torch.nn.Module]:
    """A finished run in the real format (config from training.run_config), random weights."""
    data = digits()
    cfg = TrainConfig(dataset="digits", model=model, model_hparams=hparams, seed=seed, epochs=2)
    net, hp = build_for(cfg, data)
    torch.manual_seed(seed + 1)
    for m in net.modules():  # non-trivial BatchNorm statistics, so buffers must travel too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    run = create_run(root, name, run_config(cfg, data, hp, count_parameters(net)))
    net.eval()
    save_weights(run.file(WEIGHTS), net, {"epoch": 1})
    # Made-up predictions (the metrics only have to travel, not be earned).
    g = torch.Generator().manual_seed(seed)
    preds = torch.where(torch.rand(len(data.test_y), generator=g) < 0.8, data.test_y,
                        torch.randint(0, data.num_classes, (len(data.test_y),), generator=g))
    confs = torch.rand(len(data.test_y), generator=g)
    report = full_report(data.test_y.numpy(), preds.numpy(), data.class_names)
    run.write_test_metrics(report)
    run.write_metrics([{"epoch": e, "train_loss": 1.0, "val_loss": 1.1, **{f"val_{k}": report[k] for k in METRIC_NAMES}}
                       for e in (1, 2)])
    run.write_predictions(data.test_y.numpy(), preds.numpy(), confs.numpy())
    save_samples(run.file("samples.safetensors"), data, preds, confs)
    run.write_status(state="finished")
    return run.path, net


def batch(path: Path) -> torch.Tensor:
    cfg = open_run(path).config()
    torch.manual_seed(0)
    return torch.randn(4, cfg["in_chans"], cfg["img_size"], cfg["img_size"])


@pytest.mark.parametrize("model,hparams", [
    ("tinyvit", dict(embed_dim=32, num_heads=4, num_layers=2, mlp_dim=64)),
    ("cnn", dict(widths=[8, 16])),
    ("resnet18", {}),
])
def test_round_trip_gives_identical_logits(fake_hub, tmp_path, model, hparams):
    path, net = make_run(tmp_path / "runs", f"r-{model}", model, **hparams)
    url = push_run(path, f"alice/{model}-digits", private=True)
    assert url == f"{HUB_URL}/alice/{model}-digits" and fake_hub.created[f"alice/{model}-digits"] is True
    pushed = {p.name for p in fake_hub.files(f"alice/{model}-digits")}
    assert pushed == set(hub.REPO_FILES)

    local = load_run_from_hub(f"alice/{model}-digits", cache_root=tmp_path / "from-hub")
    loaded = load_run(local)
    x = batch(path)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), net(x))
    assert loaded.class_names == [str(i) for i in range(10)]
    assert loaded.config["model"] == model
    assert open_run(local).test_metrics() == open_run(path).test_metrics()
    assert open_run(local).status()["state"] == "finished"
    # The same repo is a plain PyTorchModelHubMixin model too.
    mixin = type(net).from_pretrained(str(fake_hub.path(f"alice/{model}-digits")), strict=True)
    with torch.no_grad():
        assert torch.equal(mixin(x), net(x))


def test_a_trained_demo_run_travels_whole(fake_hub, tmp_path):
    path = DEMO_ROOT / "demo-shapes-tinyvit"
    push_run(path, "alice/shapes")
    local = load_run_from_hub("alice/shapes", cache_root=tmp_path / "h")
    for name in hub.RUN_FILES:
        assert (local / name).read_bytes() == (path / name).read_bytes(), name
    x = batch(path)
    with torch.no_grad():
        assert torch.equal(load_run(local).model(x), load_run(path).model(x))


def test_local_copy_is_read_only_and_named_after_the_repo(fake_hub, tmp_path):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/ro")
    local = load_run_from_hub("alice/ro")
    assert local == hub.hub_runs_root() / "alice--ro"
    assert local.parent == tmp_path / "runs" / ".hub"
    with pytest.raises(RunError):
        delete_run(open_run(local))
    assert local.is_dir()
    st = open_run(local).status()
    assert st["hub_repo"] == "alice/ro" and st["hub_commit"] == fake_hub.commit("alice/ro")


def test_model_card_holds_the_metric_table_and_metadata(fake_hub, tmp_path):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/card")
    card = ModelCard.load(fake_hub.path("alice/card") / "README.md")
    test = open_run(path).test_metrics()
    assert "| | Accuracy | F1 | Recall | MCC | Precision |" in card.text
    row = " | ".join(f"{100 * test[k]:.2f}" for k in METRIC_NAMES)
    assert f"| test ({test['num_samples']} images) | {row} |" in card.text
    cfg = open_run(path).config()
    assert "Digits (scikit-learn)" in card.text and f"| batch size | {cfg['batch_size']} |" in card.text
    assert f"| learning rate | {cfg['lr']} |" in card.text and "embed_dim=16" in card.text
    assert "tinyvit.models.vit import TinyViT" in card.text
    data = card.data
    assert data.library_name == "tinyvit-lab" and data.pipeline_tag == "image-classification"
    assert {"image-classification", "tinyvit-lab", "tinyvit", "digits"} <= set(data.tags)
    assert data.metrics == ["accuracy", "f1", "recall", "matthews_correlation", "precision"]
    values = {r.metric_type: r.metric_value for r in data.eval_results}
    assert values["matthews_correlation"] == round(100 * test["mcc"], 2)
    assert {r.dataset_split for r in data.eval_results} == {"test"}


def test_card_names_hub_datasets_where_they_exist():
    cfg = {"model": "tinyvit", "dataset": "cifar10", "dataset_title": "CIFAR-10"}
    assert hub.card_data(cfg, {}, "a/b").datasets == ["uoft-cs/cifar10"]
    assert hub.card_data({**cfg, "dataset": "shapes"}, {}, "a/b").datasets is None


def test_pushed_config_serves_the_run_and_the_mixin_without_host(fake_hub, tmp_path):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/cfg")
    cfg = json.loads((fake_hub.path("alice/cfg") / "config.json").read_text())
    assert "host" not in cfg and "host" in open_run(path).config()
    assert cfg["embed_dim"] == 16 and cfg["model_hparams"]["embed_dim"] == 16
    assert cfg["class_names"] == open_run(path).config()["class_names"] and cfg["mean"]


def test_push_refuses_unfinished_runs_bad_ids_missing_token_and_offline(fake_hub, tmp_path, monkeypatch):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    with pytest.raises(HubError, match="USER/REPO"):
        push_run(path, "no-namespace")
    with pytest.raises(HubError, match="not a valid"):
        push_run(path, "alice/bad--name")
    with pytest.raises(HubError, match="no run at"):
        push_run(tmp_path / "nowhere", "alice/x")
    open_run(path).write_status(state="stopped")
    with pytest.raises(HubError, match="has not finished"):
        push_run(path, "alice/x")
    open_run(path).write_status(state="finished")
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(HubError, match="HF_TOKEN"):
        push_run(path, "alice/x")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match="HF_HUB_OFFLINE"):
        push_run(path, "alice/x")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    fake_hub.reachable = False
    with pytest.raises(HubError, match="could not reach"):
        push_run(path, "alice/x")
    assert not fake_hub.root.exists() or not any(fake_hub.root.rglob("*.safetensors"))


def put_repo(fake: FakeHub, repo_id: str, files: dict[str, bytes]) -> None:
    fake.path(repo_id).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (fake.path(repo_id) / name).write_bytes(data)


@pytest.mark.parametrize("files,message", [
    ({"README.md": b"# a text model"}, "not a TinyViT Lab run: it has no config.json"),
    ({"config.json": b"{not json"}, "not valid JSON"),
    ({"config.json": b'{"model_type": "bert", "hidden_size": 768}'}, "not a TinyViT Lab run: its config.json lacks"),
])
def test_load_refuses_repos_that_are_not_runs(fake_hub, tmp_path, files, message):
    put_repo(fake_hub, "bob/other", files)
    with pytest.raises(HubError, match=message):
        load_run_from_hub("bob/other", cache_root=tmp_path / "from-hub")
    assert not (tmp_path / "from-hub" / "bob--other").exists()


def test_a_repo_that_is_not_a_run_is_refused_before_its_weights_download(fake_hub, tmp_path):
    put_repo(fake_hub, "bob/llm", {"config.json": b'{"model_type": "gpt2"}', WEIGHTS: b"x" * 10_000})
    with pytest.raises(HubError, match="bob/llm is not a TinyViT Lab run"):
        load_run_from_hub("bob/llm", cache_root=tmp_path / "h")
    assert fake_hub.downloads == ["bob/llm/config.json"]


def test_a_run_config_without_weights_is_refused(fake_hub, tmp_path):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/w")
    (fake_hub.path("alice/w") / WEIGHTS).unlink()
    with pytest.raises(HubError, match="alice/w has no model.safetensors"):
        load_run_from_hub("alice/w", cache_root=tmp_path / "h")


def test_load_refuses_unknown_model_and_mismatched_weights(fake_hub, tmp_path):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/m")
    repo = fake_hub.path("alice/m")
    cfg = json.loads((repo / "config.json").read_text())
    (repo / "config.json").write_text(json.dumps({**cfg, "model": "vgg99"}))
    with pytest.raises(HubError, match="'vgg99', which this version of TinyViT Lab does not know"):
        load_run_from_hub("alice/m", cache_root=tmp_path / "h")

    (repo / "config.json").write_text(json.dumps(cfg))
    other = build_model("tinyvit", num_classes=10, img_size=16, in_chans=1, embed_dim=16, num_heads=2,
                        num_layers=2, mlp_dim=32)
    save_file(other.state_dict(), str(repo / WEIGHTS))
    with pytest.raises(HubError, match=r"do not match the tinyvit .*unexpected blocks\.1\."):
        load_run_from_hub("alice/m", cache_root=tmp_path / "h")

    wrong = build_model("tinyvit", num_classes=10, img_size=16, in_chans=1, embed_dim=24, num_heads=2,
                        num_layers=1, mlp_dim=32)
    save_file(wrong.state_dict(), str(repo / WEIGHTS))
    with pytest.raises(HubError, match=r"do not match .*cls_token is \(1, 1, 24\)"):
        load_run_from_hub("alice/m", cache_root=tmp_path / "h")
    (repo / WEIGHTS).write_bytes(b"truncated")
    with pytest.raises(HubError, match="damaged or not safetensors"):
        load_run_from_hub("alice/m", cache_root=tmp_path / "h")
    assert not (tmp_path / "h" / "alice--m").exists()


def test_missing_repo_and_no_network_give_clear_errors(fake_hub, tmp_path):
    with pytest.raises(HubError, match="no model repository alice/nothing-here"):
        load_run_from_hub("alice/nothing-here", cache_root=tmp_path / "h")
    fake_hub.reachable = False
    with pytest.raises(HubError, match="could not reach the Hugging Face Hub .* not in the local cache"):
        load_run_from_hub("alice/nothing-here", cache_root=tmp_path / "h")


def test_offline_loads_from_the_cache(fake_hub, tmp_path, monkeypatch):
    path, net = make_run(tmp_path / "runs", "r", model="cnn", widths=[8, 16])
    push_run(path, "alice/off")
    first = load_run_from_hub("alice/off", cache_root=tmp_path / "h")
    shutil.rmtree(first)  # rebuilt from the Hugging Face cache alone

    def no_network(*a, **k):
        raise AssertionError("offline mode must not call the Hub")

    monkeypatch.setattr(HfApi, "repo_info", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = load_run_from_hub("alice/off", cache_root=tmp_path / "h")
    x = batch(path)
    with torch.no_grad():
        assert torch.equal(load_run(again).model(x), net(x))


def test_offline_without_cache_says_so(tmp_path, monkeypatch):
    # The real snapshot_download, with nothing patched: offline it must not touch the network.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubError, match=r"HF_HUB_OFFLINE=1 is set and alice/never-seen is not in the local cache"):
        load_run_from_hub("alice/never-seen", cache_root=tmp_path / "h")


def test_new_commit_replaces_the_local_copy(fake_hub, tmp_path):
    a, net_a = make_run(tmp_path / "runs", "a", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32, seed=1)
    b, net_b = make_run(tmp_path / "runs", "b", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32, seed=2)
    push_run(a, "alice/v")
    local = load_run_from_hub("alice/v", cache_root=tmp_path / "h")
    stamp = (local / WEIGHTS).stat().st_mtime_ns
    assert load_run_from_hub("alice/v", cache_root=tmp_path / "h") == local
    assert (local / WEIGHTS).stat().st_mtime_ns == stamp  # same commit: reused
    push_run(b, "alice/v")
    assert load_run_from_hub("alice/v", cache_root=tmp_path / "h") == local
    x = batch(a)
    with torch.no_grad():
        assert torch.equal(load_run(local).model(x), net_b(x))
        assert not torch.equal(net_a(x), net_b(x))
    assert [p.name for p in (tmp_path / "h").iterdir()] == ["alice--v"]  # no temporary folders left


def test_hub_token_sources(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", " hf_env ")
    assert hub.hub_token() == "hf_env"
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    monkeypatch.delitem(sys.modules, "streamlit", raising=False)
    assert hub.hub_token() is None

    class Secrets(dict):
        present = True

        def load_if_toml_exists(self):
            if self.present is None:
                raise RuntimeError("broken secrets.toml")
            return self.present

    secrets = Secrets(HF_TOKEN="hf_secret")
    monkeypatch.setitem(sys.modules, "streamlit", types.SimpleNamespace(secrets=secrets))
    assert hub.hub_token() == "hf_secret"
    secrets.present = False
    assert hub.hub_token() is None
    secrets.present = None
    assert hub.hub_token() is None
    monkeypatch.setattr(hub, "get_token", lambda: "hf_saved_login")
    assert hub.hub_token() == "hf_saved_login"


def test_repo_ids_are_checked_and_urls_accepted():
    assert hub.check_repo_id(" https://huggingface.co/alice/model/ ") == "alice/model"
    for bad in ("", "alice", "alice/", "../etc/passwd", "alice/a/b", "alice/x y"):
        with pytest.raises(HubError):
            hub.check_repo_id(bad)


TINY = ["--dataset", "digits", "--model", "tinyvit", "--subset", "3", "--epochs", "1", "--embed-dim", "16",
        "--num-heads", "2", "--num-layers", "1", "--mlp-dim", "32", "--threads", "1", "--quiet"]


def test_train_push_to_hub(fake_hub, tmp_path, capsys):
    runs = tmp_path / "cli-runs"
    assert train.main(TINY + ["--runs-root", str(runs), "--name", "cli", "--push-to-hub", "alice/cli"]) == 0
    assert f"pushed to the Hugging Face Hub: {HUB_URL}/alice/cli" in capsys.readouterr().out
    assert {p.name for p in fake_hub.files("alice/cli")} == set(hub.REPO_FILES)
    local = load_run(load_run_from_hub("alice/cli", cache_root=tmp_path / "h"))
    x = batch(runs / "cli")
    with torch.no_grad():
        assert torch.equal(local.model(x), load_run(runs / "cli").model(x))


def test_train_checks_the_repo_and_token_before_training(fake_hub, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "cli-runs"
    assert train.main(TINY + ["--runs-root", str(runs), "--push-to-hub", "not a repo"]) == 2
    assert "--push-to-hub" in capsys.readouterr().err
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    assert train.main(TINY + ["--runs-root", str(runs), "--push-to-hub", "alice/cli"]) == 2
    assert "HF_TOKEN" in capsys.readouterr().err
    assert not runs.exists()


def test_train_reports_a_failed_push_and_keeps_the_run(fake_hub, tmp_path, capsys):
    runs = tmp_path / "cli-runs"
    fake_hub.reachable = False
    assert train.main(TINY + ["--runs-root", str(runs), "--name", "keep", "--push-to-hub", "alice/cli"]) == 1
    err = capsys.readouterr().err
    assert "the run finished but the push failed" in err and "python -m tinyvit.hub push" in err
    assert open_run(runs / "keep").status()["state"] == "finished"


@pytest.mark.parametrize("change, message", [
    ({"img_size": "big"}, "'img_size' should be a whole number, got \"big\""),
    ({"num_classes": "ten"}, "'num_classes' should be a whole number, got \"ten\""),
    ({"in_chans": 0}, "in_chans 0, not a positive whole number"),
    ({"mean": [0.5, 0.5]}, "mean is not 1 number"),
    ({"std": [0.0]}, "std must be positive"),
    ({"model_hparams": [1, 2]}, "'model_hparams' should be an object, got [1, 2]"),
    ({"model_hparams": {"embed_dim": 16, "num_heads": 2, "num_layers": "two", "mlp_dim": 32}},
     "cannot build"),
])
def test_a_run_config_with_wrong_values_is_one_clear_message(fake_hub, tmp_path, change, message):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/v")
    repo = fake_hub.path("alice/v")
    cfg = json.loads((repo / "config.json").read_text())
    (repo / "config.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(HubError, match=re.escape(message)):
        load_run_from_hub("alice/v", cache_root=tmp_path / "h")
    assert not (tmp_path / "h" / "alice--v").exists()


def test_the_hub_command_line_pushes_and_pulls(fake_hub, tmp_path, capsys):
    path, net = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    assert hub.main(["push", str(path), "alice/cli-tool", "--private"]) == 0
    assert f"pushed {path} to {HUB_URL}/alice/cli-tool" in capsys.readouterr().out
    assert fake_hub.created == {"alice/cli-tool": True}
    assert hub.main(["pull", "alice/cli-tool", "--dir", str(tmp_path / "pulled")]) == 0
    local = tmp_path / "pulled" / hub.local_name("alice/cli-tool")
    assert f"loaded alice/cli-tool into {local}" in capsys.readouterr().out
    x = batch(path)
    with torch.no_grad():
        assert torch.equal(load_run(local).model(x), net(x))
    # Failures: one "error:" line and exit code 1, for push and pull alike.
    assert hub.main(["pull", "alice/missing", "--dir", str(tmp_path / "pulled")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no model repository alice/missing" in err[0]
    assert hub.main(["push", str(tmp_path / "nowhere"), "alice/cli-tool"]) == 1
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(SystemExit) as exit_:
        hub.main(["fetch", "alice/cli-tool"])
    assert exit_.value.code == 2


def test_a_hub_repo_with_wrongly_typed_files_is_refused_or_listed_as_damaged(fake_hub, tmp_path):
    path, _ = make_run(tmp_path / "runs", "r", embed_dim=16, num_heads=2, num_layers=1, mlp_dim=32)
    push_run(path, "alice/typed")
    repo = fake_hub.path("alice/typed")
    cfg = json.loads((repo / "config.json").read_text())
    (repo / "config.json").write_text(json.dumps({**cfg, "num_classes": str(cfg["num_classes"])}))
    with pytest.raises(HubError, match="its config.json: 'num_classes' should be a whole number"):
        load_run_from_hub("alice/typed", cache_root=tmp_path / "h")
    (repo / "config.json").write_text(json.dumps(cfg))
    (repo / "test_metrics.json").write_text('{"accuracy": "high"}')
    run = open_run(load_run_from_hub("alice/typed", cache_root=tmp_path / "h"))
    assert run.test_metrics() is None
    assert any("test_metrics.json: 'accuracy'" in p for p in run.problems())
