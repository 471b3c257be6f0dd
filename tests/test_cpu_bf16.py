"""--cpu-bf16: bf16 autocast on a CPU with native bf16, channels-last for convolutional models.
Its runs stop, resume and load like any other; on a CPU without bf16 it is refused up front."""
from __future__ import annotations

import pytest
import torch

import train
from tinyvit.inference import load_run
from tinyvit.training import runner
from tinyvit.training.config import TrainConfig, defaults_for
from tinyvit.training.loop import Trainer, set_threads
from tinyvit.training.runner import execute, prepare_new
from tinyvit.training.step import cpu_bf16_supported

needs_bf16 = pytest.mark.skipif(not cpu_bf16_supported(), reason="this CPU has no native bf16")


def tiny_cfg(model: str, **extra) -> TrainConfig:
    hparams = {"widths": [8, 16]} if model == "cnn" else {"embed_dim": 32, "num_layers": 1, "num_heads": 2,
                                                         "mlp_dim": 64}
    return TrainConfig(**{**defaults_for("digits"), "model": model, "model_hparams": hparams, "epochs": 3,
                          "subset": 10, "batch_size": 16, "threads": 1, "cpu_bf16": True, **extra})


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def bf16_trainer(model_name, tmp_path):
    """A new bf16 run of a tiny `model_name` and its one-thread Trainer."""
    set_threads(1)
    cfg = tiny_cfg(model_name)
    run, data, model, epochs = prepare_new(cfg, tmp_path, "bf16", log=lambda m: None)
    return Trainer(cfg, data, model, None, torch.device("cpu"), epochs, log=lambda m: None), data, model


@needs_bf16
def test_a_cnn_trains_under_bf16_in_channels_last_and_its_weights_stay_float32(tmp_path, keep_threads):
    trainer, data, model = bf16_trainer("cnn", tmp_path)
    assert trainer.amp and trainer.step.channels_last
    seen = []
    model.features[0].register_forward_hook(
        lambda m, inp, out: seen.append((out.dtype, inp[0].is_contiguous(memory_format=torch.channels_last))))
    trainer.train_epoch(0)
    trainer.step.close()
    assert seen and set(seen) == {(torch.bfloat16, True)}  # under autocast, on channels-last batches
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay float32


@needs_bf16
def test_a_vit_under_bf16_keeps_contiguous_tensors(tmp_path, keep_threads):
    trainer, data, _ = bf16_trainer("tinyvit", tmp_path)
    assert trainer.amp and not trainer.step.channels_last
    loss, _ = trainer.step(data.train_x[:16].float() / 255, data.train_y[:16])
    trainer.step.close()
    assert torch.isfinite(loss)


@needs_bf16
def test_a_bf16_run_stops_resumes_and_loads(tmp_path, keep_threads):
    cfg = tiny_cfg("cnn")
    run, data, model, epochs = prepare_new(cfg, tmp_path, "bf16", log=lambda m: None)

    def stop_in_epoch_two(epoch, batch, batches):
        if epoch == 1 and batch == 1:
            run.request_stop()

    set_threads(1)
    execute(run, data, model, epochs, cfg, False, torch.device("cpu"), on_batch=stop_in_epoch_two,
            log=lambda m: None)
    assert run.status()["state"] == "stopped"
    assert train.main(["--resume", "--run-dir", str(run.path), "--quiet"]) == train.EXIT_OK
    assert run.status()["state"] == "finished" and [m["epoch"] for m in run.metrics()] == [1, 2, 3]
    loaded = load_run(run.path)
    assert loaded.config["cpu_bf16"] is True
    x = data.test_x[:4].float() / 255
    assert torch.isfinite(loaded.model(x)).all()


def test_without_native_bf16_the_flag_is_refused_before_a_run_folder_exists(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "cpu_bf16_supported", lambda: False)
    code = train.main(["--dataset", "digits", "--model", "cnn", "--widths", "8", "16", "--subset", "10",
                       "--epochs", "1", "--cpu-bf16", "--device", "cpu", "--runs-root", str(tmp_path), "--quiet"])
    assert code == train.EXIT_USAGE
    assert "--cpu-bf16 needs a CPU with native bf16" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
