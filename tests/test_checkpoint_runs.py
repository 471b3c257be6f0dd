import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tinyvit import checkpoint
from tinyvit.checkpoint import (CheckpointError, load_training_state, load_weights,
                                save_training_state, save_weights)
from tinyvit.inference import ImageError, Preprocess, open_image
from tinyvit.models import build_model
from tinyvit.runs import (RunError, check_run_name, create_run, delete_run, list_runs, open_run,
                          unique_run_name)


def _model():
    torch.manual_seed(0)
    return build_model("tinyvit", num_classes=4, img_size=8, in_chans=1, num_layers=2, embed_dim=32,
                       num_heads=4, mlp_dim=64)


def test_weights_round_trip_exactly(tmp_path):
    a, b = _model(), build_model("tinyvit", num_classes=4, img_size=8, in_chans=1, num_layers=2,
                                 embed_dim=32, num_heads=4, mlp_dim=64)
    save_weights(tmp_path / "m.safetensors", a, {"epoch": 3})
    assert load_weights(tmp_path / "m.safetensors", b) == {"epoch": 3}
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k


def test_training_state_restores_the_optimizer(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.8, 0.95), weight_decay=0.03, eps=1e-7)
    for _ in range(3):
        model(torch.randn(2, 1, 8, 8)).sum().backward()
        opt.step()
    save_training_state(tmp_path / "c.safetensors", model, opt, {"epoch": 1, "history": [{"a": 1}]})
    model2 = _model()
    # Other settings on purpose: every one of them must come back from the file.
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    meta = load_training_state(tmp_path / "c.safetensors", model2, opt2)
    assert meta["epoch"] == 1 and meta["history"] == [{"a": 1}]
    d1, d2 = opt.state_dict(), opt2.state_dict()
    assert d1["param_groups"] == d2["param_groups"]
    assert d2["param_groups"][0]["lr"] == 2e-3 and d2["param_groups"][0]["betas"] == (0.8, 0.95)
    s1, s2 = d1["state"], d2["state"]
    assert s1.keys() == s2.keys() and len(s1) == len(list(model.parameters()))
    for i in s1:
        assert s1[i].keys() == s2[i].keys() == {"step", "exp_avg", "exp_avg_sq"}
        for key in s1[i]:
            assert torch.equal(s1[i][key], s2[i][key]), (i, key)
    for p1, p2 in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p1, p2)


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(path, _model())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_weights(path, _model())


def test_tampered_checkpoint_fails_its_checksum(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(path, _model())
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # flip bits inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_weights(path, _model())


def test_weights_for_another_shape_are_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(path, _model())
    other = build_model("tinyvit", num_classes=5, img_size=8, in_chans=1, num_layers=2, embed_dim=32,
                        num_heads=4, mlp_dim=64)
    with pytest.raises(CheckpointError, match="do not match"):
        load_weights(path, other)


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    model = _model()
    save_weights(path, model, {"epoch": 1})
    before = path.read_bytes()

    def half_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 100)  # half a file, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_weights(path, _model(), {"epoch": 2})
    assert path.read_bytes() == before
    assert load_weights(path, _model()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left


def _rewrite_header(path, edit):
    """Rewrite a checkpoint with its JSON header edited and its stored digest kept as it was."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
    meta = json.loads(header["json"])
    edit(meta)
    save_file(tensors, str(path), metadata={**header, "json": json.dumps(meta)})


@pytest.mark.parametrize("edit", [
    lambda m: m.update(epoch=m["epoch"] + 1),
    lambda m: m["history"].append({"epoch": 2}),
    lambda m: m["param_groups"][0].update(lr=1.0),
])
def test_an_edited_checkpoint_header_fails_its_checksum(tmp_path, edit):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    path = tmp_path / "c.safetensors"
    save_training_state(path, model, opt, {"epoch": 1, "history": [{"epoch": 1}]})
    load_training_state(path, _model(), torch.optim.AdamW(_model().parameters()))  # intact: loads
    _rewrite_header(path, edit)
    with pytest.raises(CheckpointError, match="checksum"):
        load_training_state(path, _model(), torch.optim.AdamW(_model().parameters()))


def test_a_checkpoint_without_a_header_checksum_is_not_resumed_from(tmp_path):
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    path = tmp_path / "c.safetensors"
    save_training_state(path, model, opt, {"epoch": 1})
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        header = {k: v for k, v in f.metadata().items() if k != "covers"}
    save_file(tensors, str(path), metadata=header)
    with pytest.raises(CheckpointError, match="cannot be verified"):
        load_training_state(path, _model(), torch.optim.AdamW(_model().parameters()))


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/b", ".hidden", "", "x" * 101, "a..b"])
def test_run_names_cannot_escape_the_runs_folder(name):
    with pytest.raises(RunError):
        check_run_name(name)


def test_run_store_create_list_delete(tmp_path):
    run = create_run(tmp_path, "first", {"dataset": "digits", "model": "cnn"})
    assert run.status()["state"] == "queued"
    with pytest.raises(RunError, match="already exists"):
        create_run(tmp_path, "first", {})
    assert unique_run_name(tmp_path, "first") == "first-2"
    run.append_metrics({"epoch": 1, "val_accuracy": 0.5})
    run.append_metrics({"epoch": 2, "val_accuracy": 0.7})
    assert [m["val_accuracy"] for m in run.metrics()] == [0.5, 0.7]
    assert [r.name for r in list_runs(tmp_path)] == ["first"]
    (tmp_path / "not-a-run").mkdir()
    assert [r.name for r in list_runs(tmp_path)] == ["first"]
    with pytest.raises(RunError, match="not a TinyViT Lab run"):
        open_run(tmp_path / "not-a-run")
    delete_run(run, root=tmp_path)
    assert not run.path.exists()


def test_a_dead_training_process_shows_as_failed(tmp_path):
    run = create_run(tmp_path, "r", {})
    run.write_status(state="running", pid=2 ** 22 + 12345)  # no such process
    st = run.status()
    assert st["state"] == "failed" and "ended unexpectedly" in st["error"]


def test_running_and_readonly_runs_are_not_deleted(tmp_path):
    run = create_run(tmp_path, "r", {})
    run.write_status(state="running", pid=os.getpid())
    run.claim()  # as train.py does while it trains
    with pytest.raises(RunError, match="still training"):
        delete_run(run, root=tmp_path)
    run.release()
    run.write_status(state="finished", pid=None)
    (run.path / ".readonly").touch()
    with pytest.raises(RunError, match="demo run"):
        delete_run(run, root=tmp_path)
    assert run.path.exists()


def _png(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_bad_uploads_get_clear_errors():
    with pytest.raises(ImageError, match="empty"):
        open_image(b"", "a.png")
    with pytest.raises(ImageError, match="not an image"):
        open_image(b"hello world, not a picture", "a.png")
    data = _png(Image.new("RGB", (64, 64), "red"))
    with pytest.raises(ImageError, match="damaged or truncated"):
        open_image(data[: len(data) // 2], "a.png")


def test_decompression_bombs_are_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="decompression bomb"):
        open_image(_png(Image.new("L", (40, 40))), "big.png")


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "RGB", "LA", "I;16"])
def test_preprocess_accepts_every_common_mode(mode):
    img = Image.new("RGB", (40, 30), (200, 10, 10)).convert(mode)
    for chans in (1, 3):
        x = Preprocess(16, chans, [0.5] * chans, [0.25] * chans)(open_image(_png(img)))
        assert x.shape == (1, chans, 16, 16) and torch.isfinite(x).all()


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert open_image(buf.getvalue()).size == (20, 40)


def test_dark_ink_on_paper_is_inverted_for_digit_models():
    paper = Image.new("L", (32, 32), 255)
    paper.paste(0, (12, 4, 20, 28))  # a dark stroke
    x = Preprocess(16, 1, [0.0], [1.0], dark_background=True).to_uint8(paper)
    assert x[0, 0, 0] < 50 and x[0, 8, 8] > 200


def test_a_16_bit_upload_opens_as_the_8_bit_picture_it_shows():
    gray = Image.linear_gradient("L").resize((32, 32))
    deep = Image.fromarray(np.asarray(gray).astype(np.uint16) * 257)
    opened = open_image(_png(deep))
    assert opened.mode == "L" and np.array_equal(np.asarray(opened), np.asarray(gray))
