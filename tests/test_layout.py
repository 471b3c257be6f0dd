"""The package layout (issue 9): the core imports neither Streamlit nor plotly, only
tinyvit/app/ and pages/ do, and the README and docs/architecture.md name the packages there are."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORE = ("tinyvit.models", "tinyvit.data", "tinyvit.training.loop", "tinyvit.training.runner", "tinyvit.inference",
        "tinyvit.evaluation", "tinyvit.explain", "tinyvit.runs", "tinyvit.checkpoint", "tinyvit.metrics", "tinyvit.model_maps",
        "tinyvit.timeline", "tinyvit.faithfulness", "tinyvit.anatomy", "tinyvit.hub", "tinyvit.sweep.worker")
UI_LIBRARIES = ("streamlit", "plotly")


def test_importing_the_core_loads_neither_streamlit_nor_plotly():
    code = (f"import sys\nimport {', '.join(CORE)}\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(UI_LIBRARIES)!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_app_package_and_the_pages_import_ui_libraries():
    ui = REPO / "tinyvit" / "app"
    offenders = [str(p.relative_to(REPO)) for p in (REPO / "tinyvit").rglob("*.py")
                 if ui not in p.parents and imported(p) & set(UI_LIBRARIES)]
    assert offenders == []
    assert imported(ui / "ui.py") & {"streamlit"}  # the check looks where the UI libraries are


def test_readme_and_architecture_name_every_package_and_top_level_module():
    packages = sorted(f"{p.parent.name}/" for p in (REPO / "tinyvit").glob("*/__init__.py"))
    modules = sorted(f"tinyvit/{p.name}" for p in (REPO / "tinyvit").glob("*.py") if p.name != "__init__.py")
    readme = REPO.joinpath("README.md").read_text(encoding="utf-8")
    development = readme[readme.index("## Development"):]
    architecture = REPO.joinpath("docs", "architecture.md").read_text(encoding="utf-8")
    for doc in (development, architecture):
        missing = [p for p in packages if not re.search(r"(^|[\s/`])" + re.escape(p), doc, re.M)]
        missing += [m for m in modules if not re.search(re.escape(m[:-3].split("/")[-1]) + r"(\.py)?\b", doc)]
        assert missing == []
