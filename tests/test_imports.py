"""Guichet imports nothing it does not declare: every third-party module imported by the
shipped packages belongs to a distribution listed in pyproject's dependencies."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("channels", "inbox", "routing", "web")


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = set()
    for requirement in project["dependencies"]:
        names.add(re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def imports() -> list[tuple[str, Path]]:
    """(top-level module, importing file) for every absolute import in the packages."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found += [(alias.name.split(".")[0], path) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.append((node.module.split(".")[0], path))
    return found


def test_every_import_is_declared() -> None:
    distributions = packages_distributions()
    allowed = declared()
    undeclared = []
    for module, path in sorted(set(imports())):
        if module in sys.stdlib_module_names or module in PACKAGES:
            continue
        owners = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not owners & allowed:
            undeclared.append(f"{module} (imported in {path.relative_to(ROOT)})")
    assert undeclared == []


def test_inbox_imports_no_other_guichet_package() -> None:
    offenders = [
        f"{module} in {path.relative_to(ROOT)}"
        for module, path in imports()
        if module in ("channels", "routing", "web") and path.is_relative_to(ROOT / "inbox")
    ]
    assert offenders == []
