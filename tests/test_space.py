"""The Hugging Face Space: Space-aware limits, the Dockerfile, .dockerignore and the README
front matter, checked for what a Docker Space needs."""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import metadata_load

from tinyvit.app import space

REPO = Path(__file__).resolve().parent.parent


# -- Space-aware defaults ------------------------------------------------------------------

@pytest.fixture
def no_space(monkeypatch):
    for name in ("SPACE_ID", "SPACE_AUTHOR_NAME", *space.ENV_OVERRIDES.values()):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_off_a_space_nothing_is_capped(no_space):
    assert not space.on_space()
    assert space.space_limits() == {"max_epochs": None, "threads": None, "max_jobs": None}
    assert space.cap("max_epochs", 100) == 100 and space.cap("threads", None) is None
    assert space.space_notice() is None
    assert space.suggested_repo_id("digits-tinyvit") == ""


def test_on_a_space_training_is_capped_and_the_disk_explained(no_space, tmp_path):
    no_space.setenv("SPACE_ID", "alice/tinyvit-lab")
    no_space.setenv("SPACE_AUTHOR_NAME", "alice")
    no_space.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    assert space.on_space()
    limits = space.space_limits()
    assert limits == space.SPACE_DEFAULTS and limits["max_jobs"] == 1 and limits["threads"] <= 2
    assert space.cap("max_epochs", 100) == limits["max_epochs"]
    assert space.cap("max_epochs", 5) == 5
    assert space.cap("threads", None) == limits["threads"]
    notice = space.space_notice(token_set=False)
    assert "not persistent" in notice and "Hub" in notice and "HF_TOKEN" in notice
    assert f"{limits['max_epochs']} epochs" in notice
    assert "HF_TOKEN" not in space.space_notice(token_set=True)
    assert space.suggested_repo_id("digits-tinyvit") == "alice/digits-tinyvit"


def test_space_variables_raise_the_caps_and_bad_values_are_ignored(no_space):
    no_space.setenv("SPACE_ID", "alice/tinyvit-lab")
    no_space.setenv("TINYVIT_MAX_EPOCHS", "100")
    no_space.setenv("TINYVIT_THREADS", "eight")
    no_space.setenv("TINYVIT_MAX_JOBS", "-1")
    assert space.space_limits() == {**space.SPACE_DEFAULTS, "max_epochs": 100}


def test_persistent_storage_changes_the_notice(no_space, tmp_path):
    no_space.setenv("SPACE_ID", "alice/tinyvit-lab")
    no_space.setattr(space, "PERSISTENT_MOUNT", tmp_path)
    no_space.setenv("TINYVIT_RUNS", str(tmp_path / "runs"))
    assert space.persistent_runs()
    assert "not persistent" not in space.space_notice(token_set=True)
    no_space.setenv("TINYVIT_RUNS", str(tmp_path.parent / "elsewhere"))
    assert not space.persistent_runs()


# -- Dockerfile ------------------------------------------------------------------------------

def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    out, current = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        current = ""
    return out


@pytest.fixture(scope="module")
def dockerfile():
    return instructions(REPO / "Dockerfile")


def args_of(dockerfile, word: str) -> list[str]:
    return [rest for w, rest in dockerfile if w == word]


def arg_defaults(dockerfile) -> dict[str, str]:
    """The build arguments' defaults (`ARG NAME=value`): what a Space builds with, as it passes none."""
    return dict(rest.split("=", 1) for rest in args_of(dockerfile, "ARG") if "=" in rest)


def base_image(dockerfile) -> str:
    (base,) = args_of(dockerfile, "FROM")
    return re.sub(r"\$\{?(\w+)\}?", lambda m: arg_defaults(dockerfile)[m.group(1)], base)


def command(dockerfile) -> list[str]:
    (cmd,) = args_of(dockerfile, "CMD")
    return json.loads(cmd)  # exec form: no shell between Docker and Streamlit


def test_dockerfile_serves_the_app_on_8501(dockerfile):
    assert base_image(dockerfile).startswith("python:3.11")
    assert args_of(dockerfile, "EXPOSE") == ["8501"]
    cmd = command(dockerfile)
    i = cmd.index("streamlit")
    assert cmd[i:i + 3] == ["streamlit", "run", "app.py"]
    flags = dict(zip(cmd[i + 3::2], cmd[i + 4::2]))
    assert flags["--server.port"] == "8501" and flags["--server.address"] == "0.0.0.0"
    # Uploads behind the Space's proxy.
    assert flags["--server.enableXsrfProtection"] == "false" and flags["--server.enableCORS"] == "false"
    (health,) = args_of(dockerfile, "HEALTHCHECK")
    assert "http://localhost:8501/_stcore/health" in health and "CMD" in health


def test_dockerfile_runs_as_uid_1000_with_a_writable_home(dockerfile):
    words = [w for w, _ in dockerfile]
    (useradd,) = [r for w, r in dockerfile if w == "RUN" and "useradd" in r]
    assert re.search(r"(--uid|-u)\s+1000\b", useradd)
    user = shlex.split(useradd)[-1]
    (switch,) = args_of(dockerfile, "USER")
    assert switch in (user, "1000")
    env = " ".join(args_of(dockerfile, "ENV"))
    home = re.search(r"\bHOME=(\S+)", env).group(1)
    assert home == f"/home/{user}"
    hf_home = re.search(r"\bHF_HOME=(\S+)", env).group(1)
    assert hf_home.startswith(home + "/")
    workdir = args_of(dockerfile, "WORKDIR")[-1]
    assert workdir.startswith(home + "/")
    user_at = words.index("USER")
    # Every COPY after the switch hands the files to the user; the cache folders are made by it.
    for i, (w, rest) in enumerate(dockerfile):
        if w == "COPY":
            assert i > user_at and rest.startswith((f"--chown={user}", "--chown=1000"))
    mkdirs = [i for i, (w, r) in enumerate(dockerfile) if w == "RUN" and "mkdir" in r and "$HF_HOME" in r]
    assert mkdirs and all(i > user_at for i in mkdirs)
    assert words.index("CMD") > user_at


def test_dockerfile_installs_the_requirements(dockerfile):
    copies = [r for w, r in dockerfile if w == "COPY"]
    runs = [r for w, r in dockerfile if w == "RUN"]
    assert any("requirements.txt" in c for c in copies)
    install = [r for r in runs if "pip install" in r and "-r requirements.txt" in r]
    assert install
    # Requirements go in before the code is copied, so code edits reuse the cached layer.
    order = [f"{w} {r}" for w, r in dockerfile]
    assert order.index(f"RUN {install[0]}") < order.index("COPY --chown=user . .")
    # torch's CPU builds, at requirements.txt's pins (not repeated in the Dockerfile).
    assert '--extra-index-url "$TORCH_INDEX_URL"' in install[0]
    assert arg_defaults(dockerfile)["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert not re.search(r"torch(vision)?==", " ".join(runs))


def test_dockerfile_build_arguments_default_to_what_a_space_uses(dockerfile):
    # A Space passes no build arguments: the defaults are its base image and torch's CPU index.
    # `make space-image` overrides both where Docker Hub and that index are out of reach.
    assert arg_defaults(dockerfile) == {"BASE_IMAGE": "python:3.11-slim",
                                        "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cpu"}
    words = [w for w, _ in dockerfile]
    # BASE_IMAGE is declared before FROM (only there can FROM use it); TORCH_INDEX_URL after it,
    # so the RUN steps see it.
    assert words[:2] == ["ARG", "FROM"] and args_of(dockerfile, "FROM") == ["${BASE_IMAGE}"]
    assert words.index("FROM") < [i for i, (w, r) in enumerate(dockerfile)
                                  if w == "ARG" and r.startswith("TORCH_INDEX_URL=")][0]


def test_dockerfile_installs_debians_fashion_mnist_as_root(dockerfile):
    (apt,) = [(i, r) for i, (w, r) in enumerate(dockerfile) if w == "RUN" and "apt-get install" in r]
    i, run = apt
    assert "dataset-fashion-mnist" in run.split() and "apt-get update" in run
    assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists" in run
    assert i < [w for w, _ in dockerfile].index("USER")  # apt needs root


# -- make space-image -------------------------------------------------------------------------

def make_rules() -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines) of the Makefile's plain rules."""
    rules, target = {}, None
    for line in (REPO / "Makefile").read_text(encoding="utf-8").splitlines():
        if line.startswith("\t") and target:
            rules[target][1].append(line.strip())
        elif re.match(r"^[\w$().\-/]+:(?!=)", line):
            target, _, prereqs = line.partition(":")
            rules[target] = (prereqs.split(), [])
        elif line and not line.startswith("#"):
            target = None
    return rules


def test_make_space_image_runs_the_script_outside_make_test():
    rules = make_rules()
    prereqs, recipe = rules["space-image"]
    assert any("tools/space_image.sh" in line for line in recipe)
    # Debian's buildah, debootstrap and chromium are installed first when missing.
    assert any("apt_install" in line and all(p in line for p in ("buildah", "debootstrap", "chromium"))
               for line in recipe)
    assert "apt-get install" in (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("test", "test-fast"):  # too slow for every CI run
        assert "space-image" not in rules[target][0]
        assert not any("space_image" in line for line in rules[target][1])
    script = (REPO / "tools" / "space_image.sh").read_text(encoding="utf-8")
    # It builds this Dockerfile with both build arguments, and serves the image's own CMD.
    assert "buildah bud" in script and "--build-arg BASE_IMAGE=" in script
    assert "--build-arg TORCH_INDEX_URL=" in script and "['Cmd']" in script
    assert "_stcore/health" in script and "space_screenshot.py" in script
    syntax = subprocess.run(["bash", "-n", str(REPO / "tools" / "space_image.sh")],
                            capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr


# -- .dockerignore ---------------------------------------------------------------------------

def _pattern(p: str) -> re.Pattern:
    parts = p.strip("/").split("/")
    rx = ""
    for i, part in enumerate(parts):
        if part == "**":
            rx += "(?:[^/]+/)*"
            continue
        rx += re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        rx += "/" if i < len(parts) - 1 else ""
    return re.compile(rx)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is out if it or a parent folder matches; later `!` lines re-include."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    out = False
    for line in patterns:
        negate = line.startswith("!")
        rx = _pattern(line[1:] if negate else line)
        if any(rx.fullmatch(p) for p in prefixes):
            out = not negate
    return out


def test_dockerignore_keeps_environments_runs_and_caches_out():
    patterns = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.strip().startswith("#")]
    for path in (".venv/bin/python", "runs/digits-tinyvit/model.safetensors", "data/cifar-10-batches-py/data_batch_1",
                 "__pycache__/x.pyc", "tinyvit/__pycache__/hub.cpython-311.pyc", ".git/HEAD",
                 ".streamlit/secrets.toml", "tools/space_image.sh"):
        assert dockerignored(path, patterns), path
    for path in ("app.py", "train.py", "requirements.txt", "tinyvit/hub.py", "pages/predict.py",
                 "demo_runs/demo-digits-tinyvit/model.safetensors", ".streamlit/config.toml"):
        assert not dockerignored(path, patterns), path


# -- README front matter ---------------------------------------------------------------------

def test_readme_front_matter_makes_a_docker_space():
    # Hugging Face reads the Space's settings from the front matter at the very top of README.md.
    readme = REPO / "README.md"
    assert readme.read_text(encoding="utf-8").startswith("---\n")
    meta = metadata_load(readme)
    assert meta["sdk"] == "docker" and meta["app_port"] == 8501
    assert meta["title"] and meta["emoji"] and meta["colorFrom"] and meta["colorTo"]
    assert 0 < len(meta["short_description"]) <= 60  # the Hub's limit
    assert meta["pinned"] is False


# -- the entry point, run as the Space runs it ------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_dockerfile_command_serves_the_health_check(dockerfile, tmp_path):
    port = free_port()
    cmd = command(dockerfile)
    cmd[cmd.index("--server.port") + 1] = str(port)
    cmd = [sys.executable, "-m", *cmd]  # the venv's streamlit, as the image's PATH finds its own
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "HF_HOME": str(home / ".cache" / "huggingface"),
           "TINYVIT_RUNS": str(home / "runs"), "SPACE_ID": "alice/tinyvit-lab"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200 and r.read().strip() == b"ok"
                    break
            except OSError:
                assert proc.poll() is None, "streamlit exited"
                assert time.time() < deadline, "no health check answer in 60 s"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
