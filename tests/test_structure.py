"""The shape of the package: the engine imports nothing from the app, no module imports
itself back through others (TYPE_CHECKING blocks and lazy imports included), and
`import framegen` stays light while naming its whole public API."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "framegen"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every framegen module `path` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    return {module for module in found if module in known}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) - {name} for name, path in found.items()}


def test_the_import_reader_resolves_relative_imports():
    edges = graph()
    assert "framegen.engine.swap" in edges["framegen.engine.hooks"]
    assert "framegen.engine.cache" in edges["framegen.run.job"]
    assert "framegen.storyboard.schema" in edges["framegen.storyboard.plan"]


@pytest.mark.parametrize("name", sorted(n for n in modules() if n.startswith("framegen.engine")))
def test_engine_imports_nothing_from_the_app(name):
    app = {m for m in graph()[name] if not m.startswith("framegen.engine")}
    assert not app, f"{name} imports app modules {sorted(app)}"


def test_no_import_cycles():
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]):
        state[name] = 1
        for child in sorted(edges[name]):
            if child == "framegen":  # the package's lazy __init__ imports nothing at import time
                continue
            assert state.get(child) != 1, " -> ".join(path + [child])
            if child not in state:
                visit(child, path + [child])
        state[name] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def test_import_framegen_is_light_and_names_its_api():
    code = (
        "import sys, framegen\n"
        "print(sorted({'torch', 'diffusers', 'transformers'} & set(sys.modules)))\n"
        "print(sorted(framegen.__all__) == sorted(dir(framegen)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True"]
    import framegen
    import framegen.engine

    for package in (framegen, framegen.engine):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"


MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_and_functions_stay_short_enough_to_read(name):
    """A newcomer reads a module in one sitting and a function on one screen."""
    source = modules()[name].read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{name}: {len(source.splitlines())} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{name}: {', '.join(long)}"
