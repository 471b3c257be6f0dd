"""Search spaces: what a sweep may vary, read from a small YAML/JSON file or a named default,
sampled through an Optuna trial, and turned into an ordinary TrainConfig.

A space maps parameter names to one of
    {"low": 1, "high": 6}                    an int (both ends ints) or float range; "log": true, "step": N
    {"choices": [32, 64, 128]}                a categorical
    post                                      a fixed value (not searched)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..training.config import RECIPES as CONFIG_RECIPES, SMALL_DATA, TrainConfig, defaults_for


class SpaceError(ValueError):
    """A search space that cannot be used; the message is one line and names the problem."""


# What the optimiser may change, per model, besides the training settings below.
MODEL_PARAMS = {
    "tinyvit": ("num_layers", "embed_dim", "num_heads", "patch_size", "mlp_ratio", "mlp_dim", "dropout", "norm"),
    "cnn": ("width", "stages", "dropout"),
}
TRAIN_PARAMS = ("lr", "weight_decay", "label_smoothing", "batch_size", "recipe")

# Training recipes a trial can pick: the slides' setup, the small-data one the offline
# datasets use by default, or the improved one under study (all in tinyvit.training.config). The
# learning rate and weight decay are parameters of their own.
RECIPES = {
    "slides": dict(batch_size=64, schedule="constant", warmup_epochs=0.0),
    "small-data": {k: v for k, v in SMALL_DATA.items() if k != "lr"},
    "plus": {k: v for k, v in CONFIG_RECIPES["plus"]["train"].items() if k not in ("lr", "weight_decay")},
}

_LR = {"low": 1e-4, "high": 3e-3, "log": True}
_WD = {"low": 1e-3, "high": 0.1, "log": True}
# Every combination of the default spaces builds on 16- and 32-pixel images (heads divide
# every width, patches divide the image); a 28-pixel image refuses patch 8, which the
# sweep then reports as a skipped trial.
NAMED_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "tinyvit-default": {
        "num_layers": {"low": 1, "high": 6},
        "embed_dim": {"choices": [32, 64, 96, 128]},
        "num_heads": {"choices": [2, 4, 8]},
        "patch_size": {"choices": [2, 4, 8]},
        "mlp_ratio": {"choices": [2, 4]},
        "lr": _LR, "weight_decay": _WD,
        "dropout": {"low": 0.0, "high": 0.3},
        "recipe": {"choices": list(RECIPES)},
    },
    # Small models only: a sweep that finishes in a few minutes on two CPU cores.
    "tinyvit-small": {
        "num_layers": {"low": 1, "high": 3},
        "embed_dim": {"choices": [16, 32, 48]},
        "num_heads": {"choices": [2, 4]},
        "patch_size": {"choices": [4, 8]},
        "mlp_ratio": {"choices": [2, 4]},
        "lr": {"low": 3e-4, "high": 3e-3, "log": True},
        "weight_decay": _WD,
        "dropout": {"low": 0.0, "high": 0.2},
    },
    "cnn-default": {
        "width": {"choices": [16, 32, 64]},
        "stages": {"low": 2, "high": 3},
        "lr": _LR, "weight_decay": _WD,
    },
}


def default_space_name(model: str) -> str:
    name = f"{model}-default"
    if name not in NAMED_SPACES:
        raise SpaceError(f"no default search space for model {model!r}; sweeps know: {', '.join(MODEL_PARAMS)}")
    return name


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                     # "int", "float", "categorical" or "fixed"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()
    value: Any = None

    def suggest(self, trial) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list:
        """Values a grid search tries: every choice, every int step, or a float's ends and middle."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.low == self.high:
            return [self.low]
        mid = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
        return [self.low, mid, self.high]


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _param(name: str, spec: Any) -> Param:
    if not isinstance(spec, dict):
        if isinstance(spec, (list, tuple)):
            raise SpaceError(f"search space: {name!r} is a list; write {{choices: [...]}} for a categorical")
        return Param(name, "fixed", value=spec)
    unknown = set(spec) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise SpaceError(f"search space: {name!r} has unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                         "(use low/high/log/step or choices)")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"search space: {name!r} has an empty range (no choices)")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise SpaceError(f"search space: {name!r} choices must be numbers or words")
        return Param(name, "categorical", choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    if not (_number(low) and _number(high)):
        raise SpaceError(f"search space: {name!r} needs numeric low and high, or choices")
    if high < low:
        raise SpaceError(f"search space: {name!r} has an empty range (low {low} > high {high})")
    log, step = bool(spec.get("log", False)), spec.get("step")
    if log and low <= 0:
        raise SpaceError(f"search space: {name!r} is log-scaled, so low must be above 0 (got {low})")
    if step is not None and (not _number(step) or step <= 0):
        raise SpaceError(f"search space: {name!r} step must be a positive number (got {step})")
    kind = "int" if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)) \
        else "float"
    return Param(name, kind, float(low) if kind == "float" else low, float(high) if kind == "float" else high,
                 log, step)


def parse_space(spec: Any, model: str) -> dict[str, Param]:
    """Check a space (a dict) against the model's parameters; raise SpaceError naming the problem."""
    if model not in MODEL_PARAMS:
        raise SpaceError(f"sweeps cannot tune model {model!r}; choose one of: {', '.join(MODEL_PARAMS)}")
    if not isinstance(spec, dict) or not spec:
        raise SpaceError("search space: expected a mapping of parameter names to ranges, got "
                         f"{type(spec).__name__ if spec else 'nothing'}")
    known = MODEL_PARAMS[model] + TRAIN_PARAMS
    params = {}
    for name, value in spec.items():
        if name not in known:
            raise SpaceError(f"search space: unknown parameter {name!r} for {model} (known: {', '.join(known)})")
        params[name] = _param(name, value)
    recipe = params.get("recipe")
    if recipe is not None:
        bad = [r for r in (recipe.choices or (recipe.value,)) if r not in RECIPES]
        if bad:
            raise SpaceError(f"search space: unknown recipe {bad[0]!r} (known: {', '.join(RECIPES)})")
    return params


def load_space(source: str | dict, model: str) -> dict[str, Any]:
    """A named space ("default", "tinyvit-small", ...), a YAML/JSON file or a dict; returns the
    checked space as plain data (it is stored in the study, so every worker samples the same space)."""
    if isinstance(source, dict):
        parse_space(source, model)
        return source
    if source in (None, "", "default"):
        source = default_space_name(model)
    if source in NAMED_SPACES:
        spec = NAMED_SPACES[source]
    else:
        spec = _read_file(Path(source))
    parse_space(spec, model)
    return spec


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(f"search space {path}: no such file (named spaces: {', '.join(NAMED_SPACES)})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpaceError(f"search space {path}: cannot read it ({err.__class__.__name__})") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise SpaceError(f"search space {path} does not parse: {err.msg} at line {err.lineno}") from None
    import yaml  # YAML is a superset of JSON, so any other suffix is read as YAML

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpaceError(f"search space {path} does not parse: {getattr(err, 'problem', None) or 'invalid YAML'}"
                         f"{where}") from None


def sample(trial, space: dict[str, Any], model: str) -> dict[str, Any]:
    """The trial's values for every parameter of the space (fixed ones included)."""
    return {name: p.suggest(trial) for name, p in parse_space(space, model).items()}


def grid_space(space: dict[str, Any], model: str) -> dict[str, list]:
    """The space as Optuna's GridSampler wants it (fixed values stay out of the grid)."""
    return {name: p.grid() for name, p in parse_space(space, model).items() if p.kind != "fixed"}


def grid_size(space: dict[str, Any], model: str) -> int:
    return math.prod(len(v) for v in grid_space(space, model).values())


def to_config(settings: dict[str, Any], params: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of one trial: the dataset's defaults, the sweep's fixed settings
    (epochs, subset, threads, ...), the trial's recipe, then its sampled values."""
    model = settings["model"]
    values = {**defaults_for(settings["dataset"], model), "model": model}
    for key in ("epochs", "subset", "threads", "img_size", "data_dir", "data_path", "device", "seed"):
        if settings.get(key) is not None:
            values[key] = settings[key]
    values.update(RECIPES.get(params.get("recipe"), {}))
    values.update({k: params[k] for k in TRAIN_PARAMS if k in params and k != "recipe"})
    values["model_hparams"] = model_hparams(model, params)
    return TrainConfig(**values)


def model_hparams(model: str, params: dict[str, Any]) -> dict[str, Any]:
    hp = {k: params[k] for k in MODEL_PARAMS[model] if k in params}
    if model == "tinyvit" and "mlp_ratio" in hp:
        ratio = hp.pop("mlp_ratio")
        if "mlp_dim" not in hp:
            hp["mlp_dim"] = int(round(ratio * hp.get("embed_dim", 128)))
    if model == "cnn" and ("width" in hp or "stages" in hp):
        width, stages = int(hp.pop("width", 64)), int(hp.pop("stages", 3))
        hp["widths"] = [width * 2 ** i for i in range(stages)]
    return hp
