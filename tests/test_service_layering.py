"""The service cannot bypass the engine facade (issue 19).

Parsed, not imported: every module of ``recsys/service`` is read with ``ast``
and its imports and attribute accesses are checked against the rule.

* No import of the Stage 2 job, the artifact format or the publish protocol
  (``recsys.stage2``, ``recsys.spark``), of the engine's own store and Stage 2
  internals (``recsys.serving.engine_store``, ``engine_batch``,
  ``stage2_state``), or of model code (``recsys.models``): the service uses
  ``recsys.serving.engine`` and ``recsys.serving.model_dir`` only.
* No fitted attribute (a name ending in ``_``, scikit-learn's convention the
  engine follows: ``dataset_``, ``stage2_``, ``hybrid_``...), no private
  attribute of another object, and none of the engine's construction
  settings (``engine_config``, ``artifacts_dir``, ``weights``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recsys.service

SERVICE = Path(recsys.service.__file__).parent
MODULES = sorted(SERVICE.rglob("*.py"))

FORBIDDEN_PREFIXES = ("recsys.stage2", "recsys.spark", "recsys.models", "recsys.serving.engine_store",
                      "recsys.serving.engine_batch", "recsys.serving.stage2_state", "recsys.serving.engine_config")
ALLOWED_SERVING = {"recsys.serving.engine", "recsys.serving.model_dir"}
FORBIDDEN_ATTRIBUTES = {"engine_config", "artifacts_dir", "weights", "run_batch", "publish", "read_pointer"}


def imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from ... import`` names (``from a import b`` gives ``a`` and ``a.b``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def bad_imports(tree: ast.Module) -> list[str]:
    bad = []
    for line, module in imported_modules(tree):
        if module.startswith(FORBIDDEN_PREFIXES):
            bad.append(f"line {line}: {module}")
        elif module.startswith("recsys.serving.") and not any(
                module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED_SERVING):
            bad.append(f"line {line}: {module}")
    return bad


def bad_attributes(tree: ast.Module) -> list[str]:
    """Fitted (``x_``), private (``obj._x`` with ``obj`` neither ``self`` nor an imported module, e.g.
    ``argparse._SubParsersAction``) and construction-setting attributes."""
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        owner_is_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", *modules)
        fitted = name.endswith("_") and not name.startswith("__")
        private = name.startswith("_") and not name.startswith("__") and not owner_is_self
        if fitted or private or name in FORBIDDEN_ATTRIBUTES:
            bad.append(f"line {node.lineno}: .{name}")
    return bad


def test_every_service_module_is_checked():
    names = {p.relative_to(SERVICE).as_posix() for p in MODULES}
    assert {"app.py", "state.py", "server.py", "routers/admin.py", "routers/events.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SERVICE).as_posix())
def test_the_service_imports_neither_the_batch_job_nor_the_publish_protocol(path):
    assert bad_imports(ast.parse(path.read_text(), str(path))) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SERVICE).as_posix())
def test_the_service_touches_no_fitted_or_private_engine_attribute(path):
    assert bad_attributes(ast.parse(path.read_text(), str(path))) == []


def test_the_rule_catches_what_the_service_used_to_do():
    """The checks find the old bypasses (the calls ``service/state.py`` and ``model_store.py`` made)."""
    old = ast.parse(
        "from recsys.stage2.job import run_batch\n"
        "from recsys.stage2 import publish\n"
        "from recsys.serving.engine_store import POINTER\n"
        "artifacts = run_batch(engine.dataset_, engine.artifacts_dir, engine.engine_config.batch)\n"
        "version = engine.stage2_.artifacts.version\n"
        "engine._deal_generator.rate_limiter = limiter\n"
    )
    assert bad_imports(old) == ["line 1: recsys.stage2.job", "line 1: recsys.stage2.job.run_batch",
                                "line 2: recsys.stage2", "line 2: recsys.stage2.publish",
                                "line 3: recsys.serving.engine_store", "line 3: recsys.serving.engine_store.POINTER"]
    assert sorted(bad_attributes(old)) == ["line 4: .artifacts_dir", "line 4: .dataset_", "line 4: .engine_config",
                                           "line 5: .stage2_", "line 6: ._deal_generator"]
