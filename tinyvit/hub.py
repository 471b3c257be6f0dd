"""Runs on the Hugging Face Hub: push a finished run as a model repo, load one back as a run.

A pushed repo is at once a TinyViT Lab run and a `PyTorchModelHubMixin` model:

    config.json          the run's config.json (dataset, model, settings, class names,
                         preprocessing) plus the model's constructor arguments at the top
                         level, so `TinyViT.from_pretrained("user/repo")` reads it too
    model.safetensors    the weights, written by the mixin's save_pretrained
    metrics.jsonl, test_metrics.json, predictions.csv, samples.safetensors   as in the run
    README.md            the model card: dataset, model, settings and the slides' metric table

Loading downloads only those files (HF_HUB_OFFLINE=1: from the local cache only), checks
them, loads the weights with strict=True and writes a read-only run folder that
`tinyvit.inference.load_run` and the app open like any other run.

    python -m tinyvit.hub push RUN_FOLDER USER/REPO [--private]
    python -m tinyvit.hub pull USER/REPO
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx2
import torch.nn as nn
from huggingface_hub import HfApi, ModelCard, ModelCardData, constants, get_token, snapshot_download
from huggingface_hub.errors import (HfHubHTTPError, HFValidationError, LocalEntryNotFoundError,
                                    OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError)
from huggingface_hub.repocard_data import EvalResult
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError
from safetensors.torch import load_file

from . import runfiles
from .checkpoint import WEIGHTS, CheckpointError, save_weights
from .inference import load_run, model_from_config
from .metrics import METRIC_NAMES, METRIC_TITLES
from .models import MODELS
from .runs import READONLY_MARK, Run, RunError, check_run_name, default_root, open_run

RUN_FILES = ("metrics.jsonl", "test_metrics.json", "predictions.csv", "samples.safetensors")
REPO_FILES = ("config.json", WEIGHTS, "README.md") + RUN_FILES
REQUIRED_CONFIG = ("model", "num_classes", "img_size", "in_chans", "mean", "std", "class_names")
LIBRARY = "tinyvit-lab"
# Hub dataset ids for the datasets that are on the Hub; the others are named in the card only.
HUB_DATASETS = {"cifar10": "uoft-cs/cifar10", "cifar100": "uoft-cs/cifar100", "mnist": "ylecun/mnist",
                "fashion-mnist": "zalando-datasets/fashion_mnist"}
HUB_METRICS = {"accuracy": "accuracy", "f1": "f1", "recall": "recall", "mcc": "matthews_correlation",
               "precision": "precision"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class HubError(RuntimeError):
    """A push or load that cannot be done; the message is user-facing and says why."""


# -- token, offline mode, names -------------------------------------------------------

def hub_token() -> str | None:
    """HF_TOKEN, else the app's Streamlit secrets, else the token saved by `hf auth login`."""
    token = os.environ.get("HF_TOKEN", "").strip()
    return token or _streamlit_secret() or get_token() or None


def _streamlit_secret() -> str | None:
    # Only inside the app: importing Streamlit from the CLI would cost a second for nothing.
    st = sys.modules.get("streamlit")
    if st is None:
        return None
    try:
        if not st.secrets.load_if_toml_exists():
            return None
        value = st.secrets.get("HF_TOKEN")
    except Exception:  # a broken secrets.toml means no token, not a crashed page
        return None
    return str(value).strip() or None if value else None


def offline() -> bool:
    """HF_HUB_OFFLINE as it is now (huggingface_hub reads it once, at import)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    return value.strip().upper() in ("1", "ON", "YES", "TRUE") or constants.HF_HUB_OFFLINE


def check_repo_id(repo_id: str) -> str:
    """USER/REPO, as the Hub accepts it; anything else gets a message saying what is wrong."""
    repo_id = (repo_id or "").strip()
    if repo_id.startswith(("https://huggingface.co/", "hf.co/")):
        repo_id = repo_id.split(".co/", 1)[1].strip("/")
    if not _REPO_ID.match(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub repository id: write it as USER/REPO, "
                       "e.g. alice/tinyvit-digits")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubError(f"{repo_id!r} is not a valid Hub repository id: {_first_line(err)}") from None
    return repo_id


def hub_runs_root() -> Path:
    """Where runs loaded from the Hub are kept: $TINYVIT_HUB_RUNS, else runs/.hub (a name no run
    can have, so these folders never mix with the user's own runs)."""
    return Path(os.environ.get("TINYVIT_HUB_RUNS") or default_root() / ".hub")


def local_name(repo_id: str) -> str:
    # The Hub forbids "--" in repo ids, so USER--REPO maps back to exactly one repo.
    return check_run_name(repo_id.replace("/", "--"))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextlib.contextmanager
def _hub_errors(repo_id: str, action: str) -> Iterator[None]:
    """Turn huggingface_hub's and the network's exceptions into one clear HubError."""
    try:
        yield
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise HubError(f"there is no model repository {repo_id} on the Hugging Face Hub "
                       "(or it is private or gated and the token cannot read it)") from None
    except LocalEntryNotFoundError:
        if offline():
            raise HubError(f"HF_HUB_OFFLINE=1 is set and {repo_id} is not in the local cache "
                           f"({constants.HF_HUB_CACHE}): load it once while online") from None
        raise HubError(f"could not reach the Hugging Face Hub to {action} {repo_id}, and it is not in "
                       "the local cache: check the network connection") from None
    except OfflineModeIsEnabled:
        raise HubError(f"HF_HUB_OFFLINE=1 is set: to {action} {repo_id} the Hub must be reachable") from None
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status == 401:
            raise HubError("the Hugging Face Hub rejected the token (401): check HF_TOKEN") from None
        if status == 403:
            hint = ("use a token with write access to that user or organisation" if action.startswith("push")
                    else "the repo is restricted: ask for access on its page, or use a token that may read it")
            raise HubError(f"the Hugging Face Hub refused to let this token {action} {repo_id} (403): "
                           f"{hint}") from None
        raise HubError(f"the Hugging Face Hub refused to {action} {repo_id}: {_first_line(err)}") from None
    except (httpx2.TransportError, ConnectionError, TimeoutError) as err:
        raise HubError(f"could not reach the Hugging Face Hub to {action} {repo_id} "
                       f"({type(err).__name__}): check the network connection") from None


# -- pushing ---------------------------------------------------------------------------

def check_push_ready(repo_id: str, token: str | None = None) -> tuple[str, str]:
    """(repo id, token), checked before any work: train.py calls it before training."""
    repo_id = check_repo_id(repo_id)
    if offline():
        raise HubError(f"HF_HUB_OFFLINE=1 is set: pushing to {repo_id} needs the network")
    token = token or hub_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN (a token with write access, from "
                       "https://huggingface.co/settings/tokens), add it to Streamlit secrets, "
                       "or run `hf auth login`")
    return repo_id, token


def push_run(run_path: Path | str, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload a finished run as USER/REPO (created if missing); returns the repo's URL."""
    repo_id, token = check_push_ready(repo_id, token)
    run = _finished_run(run_path)
    with tempfile.TemporaryDirectory(prefix="tinyvit-push-") as tmp:
        prepare_repo_folder(run, Path(tmp), repo_id)
        api = HfApi(token=token)
        with _hub_errors(repo_id, "push to"):
            url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            # delete_patterns: a file an earlier push left and this run lacks must not linger.
            api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=tmp,
                              commit_message=f"TinyViT Lab run {run.name}",
                              delete_patterns=list(REPO_FILES))
    return str(url)


def _finished_run(run_path: Path | str) -> Run:
    try:
        run = open_run(run_path)
    except RunError as err:
        raise HubError(str(err)) from None
    state = run.status()["state"]
    if state != "finished":
        raise HubError(f"{run.name} has not finished (state: {state}): only finished runs are pushed")
    if not run.has_weights() or run.test_metrics() is None:
        raise HubError(f"{run.name} lacks its weights or test_metrics.json: it cannot be pushed")
    return run


def prepare_repo_folder(run: Run, folder: Path, repo_id: str) -> None:
    """Write what a push uploads into `folder`: model card, config, weights, metrics."""
    try:
        loaded = load_run(run.path)
    except RunError as err:
        raise HubError(str(err)) from None
    cfg = public_config(loaded.config)
    folder.mkdir(parents=True, exist_ok=True)
    # The card first: save_pretrained keeps an existing README.md instead of its generic one.
    model_card(cfg, run.test_metrics() or {}, run.metrics(), repo_id, loaded.model).save(folder / "README.md")
    loaded.model.save_pretrained(folder, config=hub_config(cfg, loaded.model))
    for name in RUN_FILES:
        if run.file(name).is_file():
            shutil.copyfile(run.file(name), folder / name)


def public_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The run's config without what only concerns this machine (host name, local paths)."""
    out = {k: v for k, v in cfg.items() if k != "host"}
    if out.get("data_path"):
        out["data_path"] = Path(str(out["data_path"])).name
    return out


def hub_config(cfg: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """The run config with the mixin's constructor arguments on top: one config.json for both."""
    mixin = dict(getattr(model, "_hub_mixin_config", None) or {})
    clash = {k for k in mixin if k in cfg and cfg[k] != mixin[k]}
    if clash:
        raise HubError(f"config.json and the model disagree on {', '.join(sorted(clash))}")
    return {**cfg, **mixin}


# -- the model card ---------------------------------------------------------------------

def markdown_table(rows: list[tuple[str, dict]]) -> str:
    """The slides' table (accuracy, F1, recall, MCC, precision) in percent, as markdown."""
    head = "| | " + " | ".join(METRIC_TITLES[m] for m in METRIC_NAMES) + " |"
    rule = "|---|" + "---:|" * len(METRIC_NAMES)
    body = ["| " + label + " | " + " | ".join(f"{100 * float(m[k]):.2f}" for k in METRIC_NAMES) + " |"
            for label, m in rows]
    return "\n".join([head, rule, *body])


def _metric_rows(test: dict, history: list[dict]) -> list[tuple[str, dict]]:
    rows = []
    if all(isinstance(test.get(k), (int, float)) for k in METRIC_NAMES):
        rows.append((f"test ({test.get('num_samples', '?')} images)", test))
    if history:
        last = history[-1]
        val = {k[4:]: v for k, v in last.items() if k.startswith("val_")}
        if all(isinstance(val.get(k), (int, float)) for k in METRIC_NAMES):
            rows.append((f"validation (epoch {last.get('epoch', len(history))})", val))
    return rows


def card_data(cfg: dict, test: dict, repo_id: str) -> ModelCardData:
    dataset = str(cfg.get("dataset", ""))
    kind = cfg.get("model_kind") or MODELS[cfg["model"]].kind
    name = repo_id.split("/")[-1]
    evals = [EvalResult(task_type="image-classification", dataset_type=HUB_DATASETS.get(dataset, dataset),
                        dataset_name=str(cfg.get("dataset_title", dataset)), dataset_split="test",
                        metric_type=HUB_METRICS[m], metric_name=METRIC_TITLES[m],
                        metric_value=round(100 * float(test[m]), 2))
             for m in METRIC_NAMES if isinstance(test.get(m), (int, float))]
    return ModelCardData(
        library_name=LIBRARY, pipeline_tag="image-classification",
        tags=sorted({"image-classification", LIBRARY, "pytorch", "model_hub_mixin", "pytorch_model_hub_mixin",
                     str(cfg["model"]), "vision-transformer" if kind == "vit" else "cnn", dataset}),
        datasets=[HUB_DATASETS[dataset]] if dataset in HUB_DATASETS else None,
        metrics=[HUB_METRICS[m] for m in METRIC_NAMES],
        model_name=name, eval_results=evals or None)


def _sizes(sizes: Any) -> str | None:
    if not isinstance(sizes, dict):
        return None
    return " / ".join(f"{sizes[k]:,}" for k in ("train", "val", "test") if k in sizes)


def model_card(cfg: dict, test: dict, history: list[dict], repo_id: str,
               model: nn.Module | None = None) -> ModelCard:
    """README.md for the repo: metadata for the Hub, then what a reader wants to know."""
    spec = MODELS[cfg["model"]]
    cls = type(model) if model is not None else spec.cls
    rows = _metric_rows(test, history)
    hparams = ", ".join(f"{k}={v}" for k, v in cfg.get("model_hparams", {}).items()) or "defaults"
    settings = [("epochs", cfg.get("epochs")), ("epochs trained", len(history)),
                ("batch size", cfg.get("batch_size")), ("optimizer", "AdamW"),
                ("learning rate", cfg.get("lr")), ("schedule", cfg.get("schedule")),
                ("warmup epochs", cfg.get("warmup_epochs")), ("weight decay", cfg.get("weight_decay")),
                ("label smoothing", cfg.get("label_smoothing")),
                ("augmentation", cfg.get("augment_policy")), ("seed", cfg.get("seed")),
                ("training images per class", cfg.get("subset") or "all"),
                ("images (train / validation / test)", _sizes(cfg.get("sizes"))), ("preset", cfg.get("preset"))]
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        f"A **{spec.title}** image classifier trained on **{cfg.get('dataset_title', cfg.get('dataset'))}** "
        "with TinyViT Lab, a teaching lab for small Vision Transformers and CNNs.",
        "",
        "## Results",
        "",
        markdown_table(rows) if rows else "No test metrics were recorded for this run.",
        "",
        "Values in %. F1, recall and precision are macro averages over the classes; MCC is the "
        "Matthews correlation coefficient (scikit-learn).",
        "",
        "## Model",
        "",
        f"- model: `{cfg['model']}` ({spec.title}), `{cls.__module__}.{cls.__name__}`",
        f"- parameters: {int(cfg.get('num_params', 0)):,}",
        f"- hyperparameters: {hparams}",
        "",
        "## Dataset and preprocessing",
        "",
        f"- dataset: `{cfg.get('dataset')}` ({cfg.get('dataset_title', '')})",
        f"- classes ({cfg['num_classes']}): {', '.join(map(str, cfg['class_names']))}",
        f"- input: {cfg['img_size']}×{cfg['img_size']} pixels, {cfg['in_chans']} channel(s), "
        f"scaled to [0, 1], then normalised with mean {cfg['mean']} and std {cfg['std']}",
        "",
        "## Training settings",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in settings if v is not None),
        "",
        "Loss: cross-entropy with label smoothing. The full settings are in `config.json`, the "
        "per-epoch metrics in `metrics.jsonl`, the test report (confusion matrix, per-class scores) "
        "in `test_metrics.json`.",
        "",
        "## Use",
        "",
        "```python",
        "from tinyvit.hub import load_run_from_hub",
        "from tinyvit.inference import load_run",
        "",
        f'run = load_run(load_run_from_hub("{repo_id}"))  # model in eval mode + preprocessing',
        "```",
        "",
        "or the model alone, through `huggingface_hub`'s PyTorchModelHubMixin:",
        "",
        "```python",
        f"from {cls.__module__} import {cls.__name__}",
        "",
        f'model = {cls.__name__}.from_pretrained("{repo_id}", strict=True)',
        "```",
        "",
        "In the TinyViT Lab app, paste the repo id on the Predict, Metrics or Compare page.",
    ]
    return ModelCard(f"---\n{card_data(cfg, test, repo_id).to_yaml()}\n---\n\n" + "\n".join(lines) + "\n")


# -- loading -----------------------------------------------------------------------------

def load_run_from_hub(repo_id: str, cache_root: Path | str | None = None, token: str | None = None) -> Path:
    """Download USER/REPO and return a read-only local run folder that `load_run` opens.

    The folder is rebuilt when the repo has a new commit, and reused otherwise. Offline
    (HF_HUB_OFFLINE=1) the Hugging Face cache is used; failing that, a folder made earlier."""
    repo_id = check_repo_id(repo_id)
    root = Path(cache_root) if cache_root is not None else hub_runs_root()
    dest = root / local_name(repo_id)
    token = token or hub_token()
    try:
        # config.json alone first: a repo that is not a run (say, a 500 MB language model)
        # is turned away before its weights are downloaded.
        snapshot = _snapshot(repo_id, token, ["config.json"])
    except HubError:
        if _local_commit(dest) and offline():
            return dest  # offline, cache cleared, but the run was loaded before
        raise
    commit = snapshot.name
    if _local_commit(dest) == commit:
        return dest
    cfg = check_config(snapshot, repo_id)
    snapshot = _snapshot(repo_id, token, list(REPO_FILES), revision=commit)
    if not (snapshot / WEIGHTS).is_file():
        raise HubError(f"{repo_id} has no {WEIGHTS}: there are no weights to load")
    model = model_with_weights(snapshot, cfg, repo_id)
    _write_local_run(snapshot, cfg, model, dest, repo_id, commit)
    return dest


def _snapshot(repo_id: str, token: str | None, files: list[str], revision: str | None = None) -> Path:
    """The repo's `files` in the Hugging Face cache; the folder is named after the commit."""
    with _hub_errors(repo_id, "download"):
        return Path(snapshot_download(repo_id, repo_type="model", revision=revision, allow_patterns=files,
                                      token=token, local_files_only=offline()))


def check_config(folder: Path, repo_id: str) -> dict[str, Any]:
    """The repo's config.json, if it describes a TinyViT Lab run this version can rebuild."""
    not_run = f"{repo_id} is not a TinyViT Lab run"
    path = folder / "config.json"
    if not path.is_file():
        raise HubError(f"{not_run}: it has no config.json")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise HubError(f"{not_run}: its config.json is not valid JSON ({err})") from None
    if not isinstance(cfg, dict):
        raise HubError(f"{not_run}: its config.json is not a JSON object")
    missing = [k for k in REQUIRED_CONFIG if k not in cfg]
    if missing:
        raise HubError(f"{not_run}: its config.json lacks {', '.join(missing)}")
    problems = runfiles.read_config(path)[1]  # the same type checks as for any run folder
    if problems:
        raise HubError(f"{not_run}: its {problems[0]}")
    if cfg["model"] not in MODELS:
        raise HubError(f"{repo_id} uses the model {cfg['model']!r}, which this version of TinyViT Lab "
                       f"does not know (it knows {', '.join(MODELS)})")
    for key in ("num_classes", "img_size", "in_chans"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise HubError(f"{not_run}: its config.json has {key} {cfg[key]!r}, not a positive whole number")
    for key in ("mean", "std"):
        values = cfg[key]
        if (not isinstance(values, list) or len(values) != cfg["in_chans"]
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise HubError(f"{not_run}: its config.json's {key} is not {cfg['in_chans']} number(s)")
    if not all(v > 0 for v in cfg["std"]):
        raise HubError(f"{not_run}: its config.json's std must be positive")
    if not isinstance(cfg.get("model_hparams", {}), dict):
        raise HubError(f"{not_run}: its config.json's model_hparams is not a JSON object")
    names = cfg["class_names"]
    if not isinstance(names, list) or len(names) != cfg["num_classes"]:
        raise HubError(f"{not_run}: its config.json has {cfg['num_classes']} classes but "
                       f"{len(names) if isinstance(names, list) else 'no list of'} class names")
    return cfg


def model_with_weights(folder: Path, cfg: dict[str, Any], repo_id: str) -> nn.Module:
    """Build the model config.json names and load the repo's weights into it, strictly."""
    try:
        model = model_from_config(cfg)
    except RunError as err:
        raise HubError(f"{repo_id}: {err}") from None
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise HubError(f"{repo_id}: {WEIGHTS} is damaged or not safetensors ({_first_line(err)})") from None
    problem = mismatch(model, tensors)
    if problem:
        raise HubError(f"the weights in {repo_id} do not match the {cfg['model']} its config.json "
                       f"describes: {problem}")
    model.load_state_dict(tensors, strict=True)
    return model.eval()


def mismatch(model: nn.Module, tensors: dict) -> str | None:
    """What keeps `tensors` from loading strictly into `model`, in a few words; None if nothing."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    shapes = [f"{k} is {tuple(tensors[k].shape)}, the model needs {tuple(v.shape)}"
              for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    parts = ([f"missing {few(missing)}"] if missing else []) + ([f"unexpected {few(extra)}"] if extra else [])
    return "; ".join(parts + shapes[:2]) or None


def _local_commit(dest: Path) -> str | None:
    """The Hub commit a local copy was made from, if it is complete."""
    run = Run(dest)
    if not (run.exists and run.has_weights() and run.readonly):
        return None
    return run.status().get("hub_commit")


def _write_local_run(snapshot: Path, cfg: dict, model: nn.Module, dest: Path, repo_id: str,
                     commit: str) -> None:
    """Build the run folder beside `dest`, then swap it in: never a half-written run."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=dest.parent))
    try:
        run = Run(tmp)
        run.write_config(cfg)
        # Re-saved through tinyvit.checkpoint so load_run's checksum check holds.
        save_weights(run.file(WEIGHTS), model, {"source": f"hub:{repo_id}@{commit}"})
        for name in RUN_FILES + ("README.md",):
            if (snapshot / name).is_file():
                shutil.copyfile(snapshot / name, run.file(name))
        run.write_status(state="finished", epoch=len(run.metrics()), epochs=cfg.get("epochs"),
                         created_at=time.time(), source="hub", hub_repo=repo_id, hub_commit=commit)
        run.file(READONLY_MARK).write_text(f"loaded from the Hugging Face Hub: {repo_id}\n", encoding="utf-8")
        old = None
        if dest.exists():
            old = dest.parent / f".old-{dest.name}-{os.getpid()}-{time.time_ns()}"
            os.replace(dest, old)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except (OSError, CheckpointError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HubError(f"could not write the local copy of {repo_id} in {dest.parent}: {err}") from None


# -- command line ------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinyvit.hub",
                                description="Push a TinyViT Lab run to the Hugging Face Hub, or load one.")
    sub = p.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="upload a finished run (needs HF_TOKEN or `hf auth login`)")
    push.add_argument("run", help="the run folder, e.g. runs/digits-tinyvit-20250101-120000")
    push.add_argument("repo", help="USER/REPO on the Hub (created if missing)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    pull = sub.add_parser("pull", help="download USER/REPO into a read-only local run folder")
    pull.add_argument("repo", help="USER/REPO on the Hub")
    pull.add_argument("--dir", help=f"where the run folder goes (default: {hub_runs_root()})")
    args = p.parse_args(argv)
    try:
        if args.command == "push":
            print(f"pushed {args.run} to {push_run(args.run, args.repo, private=args.private)}")
        else:
            print(f"loaded {args.repo} into {load_run_from_hub(args.repo, args.dir)}")
    except HubError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
