"""TinyViT Lab: train, inspect and compare small vision transformers and CNNs.

The pieces the CLI and the app share:
    build_model / MODELS   the model registry            (tinyvit.models)
    load_dataset / DATASETS  datasets as uint8 tensors   (tinyvit.data)
    train.py               the trainer                   (tinyvit.training.runner, tinyvit.training.loop)
    list_runs / load_run   the run store and inference   (tinyvit.runs, tinyvit.inference)
    saliency maps and how faithful they are             (tinyvit.explain, tinyvit.faithfulness)
"""
from .models import MODELS, build_model, count_parameters
from .runs import Run, delete_run, list_runs, open_run
from .inference import load_run

__version__ = "0.1.0"
__all__ = ["MODELS", "build_model", "count_parameters", "Run", "delete_run", "list_runs",
           "open_run", "load_run", "__version__"]
