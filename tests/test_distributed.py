"""Data-parallel training: 2 CPU processes under torchrun (gloo) write one ordinary run."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tinyvit.training import distributed as dist

REPO = Path(__file__).resolve().parent.parent
TINY = ["--dataset", "digits", "--subset", "20", "--epochs", "2", "--threads", "1", "--quiet",
        "--embed-dim", "32", "--num-heads", "4", "--num-layers", "2", "--mlp-dim", "64"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_processes_train_one_run_written_by_rank_zero(tmp_path):
    root = tmp_path / "runs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={free_port()}", str(REPO / "train.py"), *TINY, "--runs-root", str(root)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, f"expected one run folder, got {[p.name for p in runs]}"
    run = runs[0]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["train_accuracy"] <= 1 and r["images_per_second"] > 0
        # Both processes' images are counted: 200 training images an epoch (20 per class).
        assert round(r["images_per_second"] * r["epoch_seconds"]) == 200
    test = json.loads((run / "test_metrics.json").read_text())
    assert 0 <= test["accuracy"] <= 1 and test["num_samples"] > 0
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    config = json.loads((run / "config.json").read_text())
    assert config["batch_size"] == 32  # the global batch, as on one process
    # Only rank 0 speaks and writes.
    assert out.count("epoch 2/2") == 1 and out.count("finished:") == 1
    assert not list(tmp_path.glob("runs/*.tmp*"))


def test_shards_of_an_epoch_are_disjoint_and_equal(monkeypatch):
    order = torch.randperm(103)
    monkeypatch.setattr(dist, "world", lambda: 3)
    shards = []
    for r in range(3):
        monkeypatch.setattr(dist, "rank", lambda r=r: r)
        shards.append(dist.my_shard(order))
    assert [len(s) for s in shards] == [34, 34, 34]  # equal: every process takes the same steps
    together = torch.cat(shards)
    assert len(set(together.tolist())) == 102
    assert dist.process_batch(64) == 21


def test_one_process_is_not_distributed():
    assert not dist.active() and dist.world() == 1 and dist.rank() == 0 and dist.is_main()
    assert dist.process_batch(64) == 64
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(dist.sum_tensor(t), t) and dist.any_true(True) and not dist.any_true(False)


def test_under_torchrun_each_process_takes_its_share_of_the_cores(monkeypatch):
    from tinyvit.training.loop import set_threads
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        assert set_threads(None) == max(1, cores // 2)
        assert set_threads(3) == 3  # --threads wins
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        assert set_threads(None) == cores
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_a_stop_file_stops_every_process_and_the_run_resumes(tmp_path):
    """The README: a STOP file ends every process after the same batch; --resume continues."""
    import time
    root, epochs = tmp_path / "runs", 12
    args = [arg if arg != "2" else str(epochs) for arg in TINY]  # --epochs 12
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    proc = subprocess.Popen([*torchrun, f"--master_port={free_port()}", str(REPO / "train.py"), *args,
                             "--runs-root", str(root), "--name", "ddp"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = root / "ddp"
    deadline = time.time() + 300
    while time.time() < deadline and not ((run / "metrics.jsonl").exists()
                                          and (run / "metrics.jsonl").read_text().strip()):
        time.sleep(0.1)
    (run / "STOP").touch()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out  # both processes ended; none waits for the other
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "stopped", out
    done = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= len(done) < epochs

    proc = subprocess.run([*torchrun, f"--master_port={free_port()}", str(REPO / "train.py"), "--resume",
                           "--run-dir", str(run), "--threads", "1", "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    assert rows[:len(done)] == done  # the epochs before the stop are kept as they were
    assert json.loads((run / "test_metrics.json").read_text())["num_samples"] > 0
