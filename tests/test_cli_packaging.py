"""What ``pip install biomae`` pulls in: exactly the packages ``src/biomae`` imports (test-only
libraries such as crowsetta belong in the ``dev`` extra)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# distribution name -> the module it provides, where they differ
MODULES = {"scikit-learn": "sklearn"}


def imported_modules(root: Path) -> set[str]:
    """Top-level names of every module imported anywhere under ``root`` (lazy imports included)."""
    names = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_runtime_dependencies_are_what_the_package_imports():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {re.split(r"[<>=!~\[ ;]", spec)[0].lower() for spec in project["dependencies"]}
    used = imported_modules(REPO / "src" / "biomae")
    unused = sorted(d for d in declared if MODULES.get(d, d) not in used)
    assert unused == [], f"runtime dependencies that src/biomae never imports: {unused}"
    assert "crowsetta" in " ".join(project["optional-dependencies"]["dev"])
