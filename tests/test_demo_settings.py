"""`make demo-runs` retrains exactly the demo runs that ship: the settings each shipped run's
config.json records are the ones tinyvit.tools.demo passes to train.py."""
from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

import train
from tinyvit.tools import demo
from tinyvit.training.config import TrainConfig
from tinyvit.data import dataset_info
from tinyvit.models import resolve_hparams
from tinyvit.runs import DEMO_ROOT

ROOT = Path(__file__).resolve().parent.parent


def make_demo_runs_args() -> list[str]:
    """The arguments the Makefile's demo-runs target gives `python -m tinyvit.tools.demo`."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    recipe = lines[lines.index(next(l for l in lines if l.startswith("demo-runs:"))) + 1]
    words = shlex.split(recipe)
    return words[words.index("tinyvit.tools.demo") + 1:]


def what_make_demo_runs_trains(d: demo.Demo) -> dict:
    """The settings train.py resolves from the command tinyvit.tools.demo runs for `d`."""
    args = demo.arg_parser().parse_args(make_demo_runs_args())
    cmd = demo.train_command(d, Path("staging"), args.threads)
    assert Path(cmd[1]).name == "train.py"
    cfg = train.config_from_args(train.parser().parse_args(cmd[2:]))
    settings = cfg.to_dict()
    info = dataset_info(cfg.dataset)
    settings["img_size"] = cfg.img_size or info.img_size
    settings["epochs"] = cfg.epochs or info.default_epochs
    settings["model_hparams"] = resolve_hparams(cfg.model, settings["img_size"], **cfg.model_hparams)
    return settings


def shipped_settings(name: str) -> dict:
    """A shipped demo's config.json. A setting added to TrainConfig (or a hyperparameter added to
    the registry) after the demo was trained is absent there: it trained with the default."""
    shipped = json.loads((DEMO_ROOT / name / "config.json").read_text(encoding="utf-8"))
    settings = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(TrainConfig)}
    settings.update({k: v for k, v in shipped.items() if k in settings})
    settings["model_hparams"] = resolve_hparams(shipped["model"], shipped["img_size"], **shipped["model_hparams"])
    return settings


@pytest.mark.parametrize("d", demo.DEMOS, ids=[d.name for d in demo.DEMOS])
def test_make_demo_runs_trains_what_ships(d):
    expected = what_make_demo_runs_trains(d)
    assert shipped_settings(d.name) == expected


def test_every_shipped_demo_has_a_recipe():
    assert {p.name for p in DEMO_ROOT.iterdir() if p.is_dir()} == {d.name for d in demo.DEMOS}
