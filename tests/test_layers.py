"""The layers of docs/ARCHITECTURE.md, checked on the source: every import of every module (at
the top or inside a function) is read with `ast`, and a test fails naming each import that breaks
the rule, so a wrong dependency is caught the day it is written."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600
MAX_LINES_EXCEPTIONS = {"lib/sandbox/app.py": 850}  # one class: the stand-in's whole API


@dataclass(frozen=True)
class Import:
    file: str  # relative to the project root
    line: int
    module: str  # absolute dotted name

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[Import]:
    """Every module `path` imports; `from lib import x` counts as `lib.x` (x may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    relative = str(path.relative_to(ROOT))
    return [Import(relative, line, module) for line, module in found]


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# (the modules a rule applies to, the imports they must not make, why)
RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("lib/store", ("lib.view",), "the storage layer never imports the view layer"),
    ("lib/cloudagent", ("lib.store", "lib.view"), "the API client knows no storage and no view"),
    (
        "lib/sandbox",
        ("lib.cloudagent",),
        "the sandbox is the independent reference the client is tested against",
    ),
)
PAGES_MAY_IMPORT = ("lib.view", "lib.services", "lib.config")


def violations(folder: str, forbidden: tuple[str, ...]) -> list[Import]:
    return [
        found
        for path in _sources(folder)
        for found in imports_of(path)
        if any(_within(found.module, prefix) for prefix in forbidden)
    ]


def page_violations() -> list[Import]:
    """Pages are UI only: from lib/ they import the view layer, the services and the settings;
    never the store, the client or DuckDB."""
    bad = []
    for path in _sources("app_pages"):
        for found in imports_of(path):
            if _within(found.module, "duckdb") or (
                _within(found.module, "lib")
                and found.module != "lib"
                and not any(_within(found.module, allowed) for allowed in PAGES_MAY_IMPORT)
            ):
                bad.append(found)
    return bad


@pytest.mark.parametrize("folder, forbidden, why", RULES, ids=[rule[0] for rule in RULES])
def test_layer_imports_follow_the_rule(folder, forbidden, why):
    broken = violations(folder, forbidden)
    assert not broken, f"{why}:\n" + "\n".join(map(str, broken))


def test_pages_import_only_the_view_layer_services_and_settings():
    broken = page_violations()
    assert not broken, (
        f"app_pages/ may import only {', '.join(PAGES_MAY_IMPORT)} from lib/, and never "
        "duckdb:\n" + "\n".join(map(str, broken))
    )


def test_the_checker_sees_every_import_form(tmp_path, monkeypatch):
    """The checker itself: absolute, `from lib import module`, relative and function-level
    imports all count (a checker that misses one form would pass a broken layout)."""
    package = tmp_path / "lib" / "store"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "bad.py").write_text(
        "import lib.view.ui\n"
        "from lib import view\n"
        "from ..view import metrics\n"
        "def late():\n"
        "    from lib.view.charts import pareto\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    found = violations("lib/store", ("lib.view",))
    assert sorted({(v.line, v.file) for v in found}) == [
        (line, "lib/store/bad.py") for line in (1, 2, 3, 5)
    ]


def test_no_module_in_lib_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): count
        for path in _sources("lib")
        if (count := len(path.read_text(encoding="utf-8").splitlines()))
        > MAX_LINES_EXCEPTIONS.get(str(path.relative_to(ROOT)), MAX_LINES)
    }
    assert not long, f"split these modules (limit {MAX_LINES} lines): {long}"
