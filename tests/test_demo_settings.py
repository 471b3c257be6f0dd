"""`make demo-runs` retrains exactly the demo runs that ship: the settings each shipped run's
config.json records are the ones tinyvit.tools.demo passes to train.py."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tinyvit.tools import demo
from tinyvit.runs import DEMO_ROOT

ROOT = Path(__file__).resolve().parent.parent


def make_demo_runs_args() -> list[str]:
    """The arguments the Makefile's demo-runs target gives `python -m tinyvit.tools.demo`."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    recipe = lines[lines.index(next(l for l in lines if l.startswith("demo-runs:"))) + 1]
    words = shlex.split(recipe.rstrip("\\ "))
    args = words[words.index("tinyvit.tools.demo") + 1:]
    shell = next((i for i, w in enumerate(args) if w in ("&", ";", "&&") or ">" in w), len(args))
    return args[:shell]


def what_make_demo_runs_trains(d: demo.Demo) -> dict:
    """The settings train.py resolves from the command tinyvit.tools.demo runs for `d`."""
    args = demo.arg_parser().parse_args(make_demo_runs_args())
    assert Path(demo.train_command(d, Path("staging"), args.threads)[1]).name == "train.py"
    return demo.planned_settings(d, args.threads)


def shipped_settings(name: str) -> dict:
    """A shipped demo's config.json, as the settings it trained with."""
    return demo.recorded_settings(json.loads((DEMO_ROOT / name / "config.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize("d", demo.DEMOS, ids=[d.name for d in demo.DEMOS])
def test_make_demo_runs_trains_what_ships(d):
    expected = what_make_demo_runs_trains(d)
    assert shipped_settings(d.name) == expected


def test_every_shipped_demo_has_a_recipe():
    assert {p.name for p in DEMO_ROOT.iterdir() if p.is_dir()} == {d.name for d in demo.DEMOS}


@pytest.mark.parametrize("name", ["demo-fmnist-tinyvit", "demo-fmnist-cnn"])
def test_the_plus_presets_are_the_fashion_mnist_demos_recipe(name):
    """`--preset plus-fashion-mnist-MODEL` trains what the shipped demo of that model trained."""
    import train
    d = next(d for d in demo.DEMOS if d.name == name)
    model = name.removeprefix("demo-fmnist-")
    preset = train.config_from_args(train.parser().parse_args(["--preset", f"plus-fashion-mnist-{model}"]))
    planned = demo.planned_settings(d, threads=2)
    resolved = {**preset.to_dict(), "img_size": 28,
                "model_hparams": demo.resolve_hparams(preset.model, 28, **preset.model_hparams)}
    differ = {k for k in planned if resolved[k] != planned[k]}
    assert differ == {"preset", "threads"}, {k: (resolved[k], planned[k]) for k in differ}
