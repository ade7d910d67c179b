"""The package import graph, read from the source with `ast`: no cycles, imports at module top
(except the optional heavy dependencies, and the code a command runs in pipeline/commands/),
and `extractors`/`models` standing alone.

Why: a function-level import hides a dependency from the reader and from this graph; a cycle
means two modules cannot be read (or imported) one before the other; and a researcher must be
able to `from models.cpsp import CPSP` without the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "extractors", "models")
# Optional heavy dependencies: importing them at module top would make the extra mandatory or
# load TensorFlow into every process. triton must come just before TensorFlow
# (extractors/tensorflow_import.py); torch.utils.tensorboard imports TensorFlow when it is
# installed unless a stub is put in place first (models/training/trainer.py).
# moviepy: the `demo` extra, imported where the demo renders video.
LATE_IMPORT_ALLOWED = ("tensorflow", "tf_keras", "tf_slim", "ray", "triton", "torch.utils.tensorboard",
                       "moviepy")
# The command modules import the code a command runs inside its function, so that `avel X
# --help` loads no torch (pipeline/cli.py, tests/test_cli_help_light.py). Those imports are
# still edges of the graph, so they count for cycles.
LATE_IMPORT_ROOMS = ("pipeline.commands",)


def _late_imports_allowed_in(module: str) -> bool:
    return any(module == room or module.startswith(room + ".") for room in LATE_IMPORT_ROOMS)


def _allowed_late(name: str) -> bool:
    return any(name == allowed or name.startswith(allowed + ".") for allowed in LATE_IMPORT_ALLOWED)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute names an import statement refers to (for `from a import b`: `a`, then `a.b`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             known: dict[str, Path]) -> set[str]:
    """Project modules an import statement makes this module depend on. `from pkg import sub`
    (a submodule) depends on `pkg.sub`, not on what `pkg/__init__.py` imports: the package's
    __init__ may import its own submodules without that being a cycle."""
    names = _imported_names(node, module, is_package)
    if isinstance(node, ast.ImportFrom):
        subs = [n for n in names[1:] if n in known]
        rest = len(subs) < len(names) - 1
        names = subs + ([names[0]] if rest else [])
    targets = {_resolve(name, known) for name in names}
    return {t for t in targets if t is not None and t != module}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module `name` refers to (its longest known prefix), else None."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _scan(path: Path) -> tuple[list[ast.Import | ast.ImportFrom], list[ast.Import | ast.ImportFrom]]:
    """(imports run when the module is imported, imports inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top: list[ast.Import | ast.ImportFrom] = []
    late: list[ast.Import | ast.ImportFrom] = []

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only; never executed
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (late if in_function else top).append(child)
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(tree, False)
    return top, late


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    known = _modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    late_imports: list[str] = []
    for module, path in known.items():
        top, late = _scan(path)
        is_package = path.name == "__init__.py"
        for node in top:
            edges[module] |= _targets(node, module, is_package, known)
        for node in late:
            if _late_imports_allowed_in(module):
                edges[module] |= _targets(node, module, is_package, known)
                continue
            names = _imported_names(node, module, is_package)
            for name in names[:1] if isinstance(node, ast.ImportFrom) else names:
                if not _allowed_late(name):
                    late_imports.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {name}")
    return edges, late_imports


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_no_function_level_imports_except_optional_heavy_dependencies():
    _, late = _graph()
    assert late == [], "\n".join(late)


@pytest.mark.parametrize("package, forbidden", [
    ("extractors", ("pipeline", "models")),
    ("models", ("pipeline", "extractors")),
])
def test_extractors_and_models_stand_alone(package, forbidden):
    known = _modules()
    offending = []
    for module, path in known.items():
        if module.split(".")[0] != package:
            continue
        top, late = _scan(path)
        for node in top + late:
            for name in _imported_names(node, module, path.name == "__init__.py"):
                if name.split(".")[0] in forbidden:
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert offending == []


def test_the_checker_sees_a_cycle_and_a_late_import(tmp_path):
    """The walkers above must be able to fail: a two-module cycle is one component, and an
    import inside a function is reported while `import ray` there is allowed."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    known = {"pkg": Path("pkg/__init__.py"), "pkg.sub": Path("pkg/sub.py"), "pkg.other": Path("pkg/other.py")}
    (node,) = ast.parse("from pkg import sub, CONSTANT").body
    assert _targets(node, "pkg.other", False, known) == {"pkg.sub", "pkg"}
    (node,) = ast.parse("from pkg import sub").body
    assert _targets(node, "pkg.other", False, known) == {"pkg.sub"}
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    import json\n    import ray\n")
    top, late = _scan(source)
    assert [n.names[0].name for n in top] == ["os"]
    assert [n.names[0].name for n in late] == ["json", "ray"]
    assert [_allowed_late(n.names[0].name) for n in late] == [False, True]
    assert not _allowed_late("torch.utils") and _allowed_late("torch.utils.tensorboard")
    assert _late_imports_allowed_in("pipeline.commands.cut")
    assert not _late_imports_allowed_in("pipeline.commandsx") and not _late_imports_allowed_in("pipeline.cut")
