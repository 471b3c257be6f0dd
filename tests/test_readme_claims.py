"""README promises that no other test file covers: each checked against the behaviour."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tinyvit.runs import DEMO_ROOT, create_run, list_runs

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_are_listed_after_your_own_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYVIT_RUNS", str(tmp_path))
    monkeypatch.delenv("TINYVIT_DEMO_RUNS", raising=False)
    demo_times = {p.name: json.loads((p / "status.json").read_text())["created_at"]
                  for p in DEMO_ROOT.iterdir() if p.is_dir()}
    # Own runs older than every demo run: sorted all together by date they would come last.
    for name, created in (("old", 1.0), ("newer", 2.0), ("middle", 1.5)):
        run = create_run(tmp_path, name, {"dataset": "digits", "model": "cnn"})
        run.write_status(created_at=created)
    assert min(demo_times.values()) > 2.0
    names = [r.name for r in list_runs()]
    demos_newest_first = sorted(demo_times, key=demo_times.get, reverse=True)
    assert names == ["newer", "middle", "old", *demos_newest_first]


def make_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def browser_tests_without_playwright(tmp_path) -> subprocess.CompletedProcess:
    """tests/test_browser.py run as `make test` runs it, where `import playwright` fails."""
    fake = tmp_path / "no-playwright" / "playwright"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named playwright')\n")
    env = {k: v for k, v in os.environ.items() if k != "TINYVIT_REQUIRE_BROWSER"}
    env.update(PYTHONPATH=str(fake.parent), TINYVIT_REQUIRE_BROWSER="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                           "tests/test_browser.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_make_test_fails_when_playwright_is_missing(tmp_path):
    assert any(line.startswith("TINYVIT_REQUIRE_BROWSER=1 ") and "pytest" in line for line in make_recipe("test"))
    required = browser_tests_without_playwright(tmp_path)
    assert required.returncode == 1, required.stdout + required.stderr
    assert "Playwright is not installed" in required.stdout and "1 error" in required.stdout
