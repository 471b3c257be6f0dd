"""Who owns a run: one training process at a time, and a pid is trusted only while it is
still the process that wrote it (issue 8, items 2, 6 and 14)."""
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runhelpers import raw_status, stopped_run, train_cmd
from tinyvit.app import jobs
from tinyvit.checkpoint import CHECKPOINT
from tinyvit.runs import RunError, create_run


def slow_to_load_folder(path: Path, classes=2, per_class=300, side=160) -> Path:
    """Enough photo-sized PNGs that loading takes a while, as a real dataset does."""
    gen = np.random.default_rng(0)
    for c in range(classes):
        (path / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(gen.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
                path / f"class{c}" / f"{i}.png", compress_level=0)
    return path


@pytest.mark.slow
def test_two_resumes_of_one_run_only_one_trains(tmp_path):
    folder = slow_to_load_folder(tmp_path / "photos")
    # 199 short epochs left after the stop: the first keeps the run for several seconds, longer
    # than the second takes to start up and reach its claim.
    run = stopped_run(tmp_path / "runs", dataset="imagefolder", data_path=str(folder), img_size=16, epochs=200)
    cmd = train_cmd("--resume", "--run-dir", str(run.path), "--max-jobs", "1")
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The second starts once the first has the run (it then loads for a while), not after a fixed
    # delay: on a busy machine the first could otherwise finish before the second even looks.
    deadline = time.time() + 120
    while not run.owned() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert run.owned(), "the first resume never took the run"
    second = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = [(p.wait(timeout=300), *p.communicate()) for p in (first, second)]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2).strip().splitlines()
    assert len(refused) == 1 and refused[0].startswith("error: ") and "already being trained" in refused[0]
    assert [m["epoch"] for m in run.metrics()] == list(range(1, 201))
    assert raw_status(run)["state"] == "finished"


def test_a_claimed_run_is_refused_in_process_and_released_after(tmp_path):
    run = create_run(tmp_path, "r", {})
    claim = run.claim()
    with pytest.raises(RunError, match="already being trained"):
        run.claim()
    assert run.owned()
    claim.release()
    assert not run.owned()
    run.claim().release()


@pytest.fixture
def stranger():
    """An unrelated process, as a pid reused after a restart would be."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_running_state_whose_owner_is_gone_is_not_trusted_or_signalled(tmp_path, stranger):
    run = create_run(tmp_path, "r", {})
    # status.json as a process that held the run before a restart left it; the pid is now another's.
    run.write_status(state="running", pid=stranger.pid, pid_start="an-earlier-boot:123")
    st = run.status()
    assert st["state"] == "failed" and "ended" in st["error"]
    with pytest.raises(RunError, match="not training"):
        jobs.stop(run, grace=0.2)
    time.sleep(0.5)
    assert stranger.poll() is None


def test_a_queued_state_with_a_reused_pid_does_not_signal_it(tmp_path, stranger):
    run = create_run(tmp_path, "r", {})
    run.write_status(state="queued", pid=stranger.pid, pid_start="an-earlier-boot:123")
    assert run.status()["state"] == "failed"
    with pytest.raises(RunError):
        jobs.stop(run, grace=0.2)
    jobs.delete(run, root=tmp_path)
    assert not run.path.exists()
    assert stranger.poll() is None


def test_a_queued_job_that_is_really_ours_is_still_cancelled(tmp_path, stranger):
    run = create_run(tmp_path, "r", {})
    run.write_status(state="queued", pid=stranger.pid)  # recorded as the app does after spawning
    assert run.status()["state"] == "queued"
    assert jobs.stop(run, grace=5) == "cancelled"
    assert stranger.wait(timeout=5) is not None
    assert raw_status(run)["state"] == "stopped"


def test_a_bad_checkpoint_on_resume_marks_the_run_failed_with_the_reason(tmp_path):
    run = stopped_run(tmp_path)
    ckpt = run.path / CHECKPOINT
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    proc = subprocess.run(train_cmd("--resume", "--run-dir", str(run.path), "--max-jobs", "1"),
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "checksum" in proc.stderr
    st = raw_status(run)
    assert st["state"] == "failed" and "checksum" in st["error"] and st.get("pid") is None
    assert run.status()["state"] == "failed" and "checksum" in run.status()["error"]
    assert ckpt.read_bytes() == bytes(data)  # the evidence is kept
