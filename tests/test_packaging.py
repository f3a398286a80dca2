"""Install what you use: the core dependencies cover what the package imports at module level, every
other import lives in the room of its extra or is lazy, and the service runs without the notebook stack."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT / "recsys"
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))

#: import name -> the distribution (pyproject name) that provides it
DISTRIBUTION = {
    "pandas": "pandas", "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn", "pyarrow": "pyarrow",
    "tqdm": "tqdm", "threadpoolctl": "threadpoolctl", "tomli_w": "tomli-w", "implicit": "implicit",
    "surprise": "scikit-surprise", "optuna": "optuna", "matplotlib": "matplotlib", "seaborn": "seaborn",
    "papermill": "papermill", "fastapi": "fastapi", "uvicorn": "uvicorn", "pydantic": "pydantic",
    "prometheus_client": "prometheus-client", "redis": "redis", "httpx": "httpx", "orjson": "orjson",
    "fastapi_offline": "fastapi-offline",
    "pyspark": "pyspark", "numba": "numba", "llvmlite": "llvmlite",
}
#: a room (folder under recsys/) may import at module level what its extra installs
ROOM_EXTRA = {"service": "service", "spark": "spark", "evaluation/peers": "research"}


def _names(requirements: list[str]) -> set[str]:
    out = set()
    for req in requirements:
        name = req.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        out.add(name.strip().lower())
    return out


def _module_level_imports(path: Path) -> set[str]:
    """Top-level packages imported by statements that run at import (not inside a function)."""
    found = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody"):
                    visit(getattr(node, field, []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def test_module_level_imports_are_core_or_the_rooms_extra() -> None:
    project = PYPROJECT["project"]
    core = _names(project["dependencies"])
    extras = {name: _names(reqs) for name, reqs in project["optional-dependencies"].items()}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        allowed = set(core)
        for room, extra in ROOM_EXTRA.items():
            if rel.startswith(room + "/"):
                allowed |= extras[extra]
        for name in sorted(_module_level_imports(path)):
            if name in sys.stdlib_module_names or name == "recsys" or name == "__future__":
                continue
            dist = DISTRIBUTION.get(name)
            if dist is None or dist not in allowed:
                wrong.append(f"{rel}: {name} ({dist or 'unknown distribution'})")
    assert not wrong, ("module-level imports that are neither core nor the room's extra (import them inside "
                       f"the function that needs them, or add the dependency): {wrong}")


def test_the_extras_keep_notebooks_and_the_service_out_of_the_core() -> None:
    project = PYPROJECT["project"]
    core = _names(project["dependencies"])
    extras = project["optional-dependencies"]
    assert {"notebooks", "service", "spark", "dev", "research"} <= set(extras)
    for heavy in ("jupyterlab", "papermill", "nbval", "fastapi", "uvicorn", "pyspark", "optuna", "pytest"):
        assert heavy not in core, heavy
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "Copyright (c) 2026 the recsys authors" in (PROJECT / "LICENSE").read_text(encoding="utf-8")


_BLOCKED = ("jupyterlab", "jupyter_server", "notebook", "ipykernel", "IPython", "papermill", "nbval", "nbformat",
            "optuna", "surprise", "matplotlib", "seaborn", "pyspark", "pytest", "hypothesis", "schemathesis")

_SERVICE_WITHOUT_EXTRAS = f"""
import importlib.abc, sys
BLOCKED = {_BLOCKED!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed with recsys[service]")
        return None
sys.meta_path.insert(0, Refuse())
import recsys.service, recsys.serving.engine, recsys.stage2.job, recsys.deals
from recsys.cli import main
try:
    main(["serve", "--help"])
except SystemExit as done:
    assert done.code == 0, done.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not loaded, loaded
print("served without", len(BLOCKED), "packages")
"""


@pytest.mark.processes  # a child Python (about 5 s: it imports the service stack)
def test_the_service_imports_and_serve_help_runs_without_the_notebook_and_research_packages() -> None:
    result = subprocess.run([sys.executable, "-c", _SERVICE_WITHOUT_EXTRAS], capture_output=True, text=True,
                            cwd=PROJECT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "usage: recsys serve" in result.stdout and "served without" in result.stdout


def test_the_readme_layout_lists_every_room_and_top_level_module_and_nothing_else() -> None:
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Package layout", 1)[1].split("```", 2)[1]
    inside = block.split("recsys/\n", 1)[1].split("\nnotebooks/", 1)[0]
    listed_rooms = {line.split()[0].rstrip("/") for line in inside.splitlines() if line.startswith("  ")
                    and line.split()[0].endswith("/")}
    heads = [line.strip().split("   ")[0] for line in inside.splitlines() if line.startswith("  ") and line[2] != " "]
    listed_modules = {name.strip(",") for head in heads for name in head.split() if name.strip(",").endswith(".py")}
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("_")}
    assert listed_rooms == rooms, f"README lists {sorted(listed_rooms)}, the tree has {sorted(rooms)}"
    assert listed_modules == modules, f"README lists {sorted(listed_modules)}, the tree has {sorted(modules)}"
    for top in ("notebooks/", "tests/", "benchmarks/"):
        assert f"\n{top}" in block and (PROJECT / top).is_dir(), top


def test_a_command_whose_extra_is_missing_names_the_extra(monkeypatch, capsys) -> None:
    import recsys.research.tuning as tuning
    from recsys.cli import main

    def no_optuna(args):
        raise ModuleNotFoundError("No module named 'optuna'", name="optuna")

    monkeypatch.setattr(tuning, "tune_main", no_optuna)
    assert main(["tune", "--data", ".", "--out", "tuned.toml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recsys tune: error: optuna is not installed") and "[research]" in err


def test_a_missing_module_of_no_extra_is_not_hidden(monkeypatch) -> None:
    import recsys.research.tuning as tuning
    from recsys.cli import main

    def broken(args):
        raise ModuleNotFoundError("No module named 'recsys.nothing'", name="recsys.nothing")

    monkeypatch.setattr(tuning, "tune_main", broken)
    with pytest.raises(ModuleNotFoundError, match="recsys.nothing"):
        main(["tune", "--data", ".", "--out", "tuned.toml"])
