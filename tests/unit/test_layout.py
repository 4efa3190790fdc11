"""The house's rules, read from the source (lazy imports inside functions count): no import cycle among the
package's modules; each framework imported from its engine's folder only; the server imports no training loop;
no function over 60 lines."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "semseg"
FRAMEWORKS = {"mxnet": "semseg.engines.mxnet", "gluoncv": "semseg.engines.mxnet", "torch": "semseg.engines.torch"}
TRAINING = ("semseg.fit.loop", "semseg.fit.job", "semseg.engines.mxnet.loop", "semseg.engines.torch.loop")
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "record_pb2.py"}


@functools.cache
def imports(name: str) -> frozenset[str]:
    """Every module `name` imports anywhere in its text (top level, functions, TYPE_CHECKING blocks)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in MODULES}
    return frozenset(found)


def package_edges(name: str) -> set[str]:
    return {target for target in imports(name) if target in MODULES and target != name}


def cycle_from(start: str) -> list[str] | None:
    stack, path = [(start, iter(sorted(package_edges(start))))], [start]
    while stack:
        _node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            path.pop()
        elif child == start:
            return [*path, start]
        elif child not in path:
            stack.append((child, iter(sorted(package_edges(child)))))
            path.append(child)
    return None


def test_no_module_is_in_an_import_cycle() -> None:
    cycles = [cycle for name in sorted(MODULES) if (cycle := cycle_from(name))]
    assert not cycles, " -> ".join(cycles[0])


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_each_framework_is_imported_from_its_engines_folder_only(framework: str) -> None:
    users = {name for name in MODULES if any(t == framework or t.startswith(f"{framework}.") for t in imports(name))}
    assert users, f"nothing imports {framework}: the test reads the imports wrongly"
    assert {name for name in users if not name.startswith(FRAMEWORKS[framework] + ".")} == set()


def reached(name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for target in package_edges(todo.pop()) - seen:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_server_imports_no_training_loop() -> None:
    server = {name for name in MODULES if name.startswith("semseg.serving")}
    reach = set().union(*(reached(name) for name in server))
    assert "semseg.engines.mxnet.predict" in reach, "the server's predict is not found: the test reads wrongly"
    assert reach.isdisjoint(TRAINING), sorted(reach & set(TRAINING))


def test_no_function_is_longer_than_60_lines() -> None:
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long
