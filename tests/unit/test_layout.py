"""The house's rules, read from the source (lazy imports inside functions count): the floors (an import only goes
down or stays on its floor: FLOORS, drawn in CONTRIBUTING.md), and no import cycle among the package's modules;
each framework imported from its engine's folder only; nothing outside the MXNet engine's folder imports it but
the registry; the engine is chosen in one place (the registry, semseg.engines); the server imports no training
loop; no function over 60 lines; no test module imports another; and every `semseg.*` name (or `semseg/...py`
path) that a docstring, a comment, the README, CONTRIBUTING.md, the manual (docs/) or the benchmarks mention
exists."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "semseg"
REGISTRY = "semseg.engines"
FRAMEWORKS = {"mxnet": "semseg.engines.mxnet", "gluoncv": "semseg.engines.mxnet", "torch": "semseg.engines.torch"}
TRAINING = ("semseg.fit.loop", "semseg.fit.life", "semseg.engines.mxnet.loop", "semseg.engines.torch.loop")
# The floors, from the ground up: each module is on the floor of the longest prefix listed here.
FLOORS = (
    ("semseg", "semseg.contract", "semseg.logs", "semseg.threads", "semseg.measures"),
    ("semseg.data", "semseg.distributed", "semseg.prepare"),
    ("semseg.outputs", "semseg.engines.record", "semseg.engines.gpus", "semseg.engines.weights",
     "semseg.engines.normalization", "semseg.engines.gluon_files", "semseg.engines.architecture"),
    ("semseg.fit",),
    ("semseg.engines", "semseg.engines.mxnet", "semseg.engines.torch"),
    ("semseg.export",),
    ("semseg.serving", "semseg.training", "semseg.cli", "semseg.watch", "semseg.example", "semseg.__main__",
     "semseg.store"),
)  # fmt: skip
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if path.name != "record_pb2.py"}
GENERATED = "semseg.serving.record_pb2"  # by protoc: no module of ours to read


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


@functools.cache
def engine_modules() -> frozenset[str]:
    """The engines' records the registry loads by name (importlib): its ENGINES table (loading no framework)."""
    from semseg.engines import ENGINES

    return frozenset(ENGINES.values())


def package_edges(name: str) -> set[str]:
    found = imports(name) | (engine_modules() if name == REGISTRY else frozenset())
    return {target for target in found if target in MODULES and target != name}


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


def reached(name: str, around: frozenset[str] = frozenset()) -> set[str]:
    """Every module `name` imports, directly or not, without passing through the modules `around`."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for target in package_edges(todo.pop()) - seen - around:
            seen.add(target)
            todo.append(target)
    return seen


def test_the_server_imports_no_training_loop() -> None:
    """The server and what it loads through the registry (each engine's `predict`: the records' serving functions
    load nothing else) reach no training loop."""
    predictors = {f"{module}.predict" for module in engine_modules()}
    assert predictors <= MODULES.keys(), "an engine without a predict module: the test reads wrongly"
    server = {name for name in MODULES if name.startswith("semseg.serving")} | predictors
    reach = set().union(*(reached(name, around=engine_modules()) for name in server))
    assert reach.isdisjoint(TRAINING), sorted(reach & set(TRAINING))


def floor(name: str) -> int:
    """The floor (0 = the ground) of module `name`: that of the longest prefix in FLOORS."""
    best, level = "", -1
    for number, rooms in enumerate(FLOORS):
        for room in rooms:
            if (name == room or name.startswith(room + ".")) and len(room) > len(best):
                best, level = room, number
    assert level >= 0, f"{name} is on no floor: add it to FLOORS"
    return level


def test_every_import_goes_down_or_stays_on_its_floor() -> None:
    up = sorted(
        f"{name} (floor {floor(name)}) -> {target} (floor {floor(target)})"
        for name in MODULES
        for target in package_edges(name)
        if floor(target) > floor(name)
    )
    assert not up, up


def test_the_floor_finder_reads_the_longest_room() -> None:
    assert floor("semseg.engines.record") == 2 and floor("semseg.engines") == 4
    assert floor("semseg.engines.torch.kit") == 4 and floor("semseg.fit.life") == 3 and floor("semseg") == 0


def test_only_the_registry_reaches_into_the_mxnet_engine() -> None:
    outside = sorted(
        f"{name} -> {target}"
        for name in MODULES
        if not name.startswith("semseg.engines.mxnet") and name != REGISTRY
        for target in package_edges(name)
        if target.startswith("semseg.engines.mxnet")
    )
    assert not outside, outside


def function_lengths(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function in `source`, its decorators and docstring included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            found.append((node.name, (node.end_lineno or node.lineno) - first + 1))
    return found


def test_no_function_is_over_the_line_limit() -> None:
    long = sorted(
        f"{name}.{function}: {lines} lines"
        for name, path in MODULES.items()
        for function, lines in function_lengths(path.read_text())
        if lines > MAX_FUNCTION_LINES
    )
    assert not long, long


def test_the_length_finder_counts_every_line() -> None:
    source = '@decorated\ndef f():\n    """doc"""\n    a = 1\n\n    return a\n'
    assert function_lengths(source) == [("f", 6)]


TESTS = ROOT / "tests"


def test_no_test_module_imports_another_or_a_conftest() -> None:
    """Tests share through helper modules (tests/helpers.py, ...) and conftest fixtures, never through each other."""
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for imported in names:
                last = imported.split(".")[-1]
                if imported.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    found.append(f"{path.relative_to(ROOT)}: {imported}")
    assert not found, found


def test_nothing_runs_up_from_the_contract() -> None:
    """contract/ is the ground floor: the SageMaker job as data, imported by everything and importing none of it."""
    up = {
        f"{name} -> {target}"
        for name in MODULES
        if name.startswith("semseg.contract.")
        for target in package_edges(name)
        if not target.startswith("semseg.contract")
    }
    assert not up, sorted(up)


def engine_comparisons(source: str, where: str = "") -> list[str]:
    """Comparisons of an engine's name with an expression about the engine (`options.engine == "torch"`)."""
    engines = {"mxnet", "torch"}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            names = {o.value for o in operands if isinstance(o, ast.Constant) and isinstance(o.value, str)}
            about = [ast.get_source_segment(source, o) or "" for o in operands if not isinstance(o, ast.Constant)]
            if names & engines and any("engine" in text for text in about):
                found.append(f"{where}:{node.lineno}: {ast.get_source_segment(source, node)}")
    return found


def test_the_engine_is_chosen_in_the_registry_only() -> None:
    assert engine_comparisons(MODULES[REGISTRY].read_text()) == [], "the registry maps names, it compares none"
    found = [
        line
        for name in sorted(MODULES)
        if name != REGISTRY
        for line in engine_comparisons(MODULES[name].read_text(), name)
    ]
    assert not found, found


def test_the_engine_comparison_finder_finds_one() -> None:
    """The finder above sees a comparison where there is one, and none where the engine is not compared."""
    source = 'if options.engine == "torch":\n    pass\nif backbone == "torch":\n    pass\n'
    assert engine_comparisons(source, "example") == ['example:1: options.engine == "torch"']


NAME = re.compile(r"(?<![\w.-])semseg(?:\.[A-Za-z_]\w*)+")  # not com.semseg.engine (a label)
PATH = re.compile(r"\bsemseg(?:/\w+)+\.py\b")
ROOMS = "|".join(sorted({path.relative_to(PACKAGE).parts[0] for path in PACKAGE.glob("*/")}))
ROOM_PATH = re.compile(rf"(?<![\w/])(?:{ROOMS})(?:/\w+)+\.py\b")  # serving/app.py: a path in the package
DOCUMENTS = ("README.md", "CONTRIBUTING.md", "docs", "benchmarks/RESULTS.md")
SOURCES = ("benchmarks", "docker", "tests")  # their comments and docstrings name the package's modules too


def mentioned(text: str) -> set[str]:
    """The semseg.* names and semseg/...py paths in `text`, as dotted names."""
    names = set(NAME.findall(text))
    names |= {path[: -len(".py")].replace("/", ".") for path in PATH.findall(text)}
    names |= {"semseg." + path[: -len(".py")].replace("/", ".") for path in ROOM_PATH.findall(text)}
    return names


@functools.cache
def top_level_names(module: str) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in ast.parse(MODULES[module].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update({(alias.asname or alias.name).split(".")[0]: node for alias in node.names})
    return names


def resolves(name: str) -> bool:
    """`name` is a module of the package, or a name defined at the top of one (or in one of its classes)."""
    if name.startswith(GENERATED):
        return True
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        module = ".".join(parts[:end])
        if module in MODULES:
            rest = parts[end:]
            break
    else:
        return False
    if not rest:
        return True
    defined = top_level_names(module).get(rest[0])
    if defined is None:
        return False
    if len(rest) > 1 and isinstance(defined, ast.ClassDef):
        members = {n.name for n in defined.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        members |= {
            t.id for n in defined.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
        }
        members |= {
            n.target.id for n in defined.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        }
        return rest[1] in members
    return True


def docstrings(module: str) -> str:
    tree = ast.parse(MODULES[module].read_text())
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
    return "\n".join(doc for node in nodes if (doc := ast.get_docstring(node)))


def documents() -> dict[str, str]:
    found = {}
    for entry in DOCUMENTS:
        path = ROOT / entry
        for file in sorted(path.rglob("*.md")) if path.is_dir() else [path]:
            found[str(file.relative_to(ROOT))] = file.read_text()
    return found


def sources() -> dict[str, str]:
    """The package's modules whole (docstrings and comments), and the Python files of SOURCES."""
    found = {name: path.read_text() for name, path in MODULES.items()}
    for folder in SOURCES:
        found |= {str(path.relative_to(ROOT)): path.read_text() for path in sorted((ROOT / folder).rglob("*.py"))}
    found.pop("tests/unit/test_layout.py")  # its own examples name what does not exist
    return found


def test_every_semseg_name_in_the_sources_or_the_documents_exists() -> None:
    texts = sources() | documents()
    missing = sorted(
        f"{where}: {name}" for where, text in texts.items() for name in mentioned(text) if not resolves(name)
    )
    assert not missing, missing


def test_the_name_finder_reads_names_and_paths() -> None:
    text = "semseg.measures.sliding.SlidingWindows, `semseg/engines/torch/predict.py`, serving/app.py, semseg.nowhere"
    names = {
        "semseg.measures.sliding.SlidingWindows",
        "semseg.engines.torch.predict",
        "semseg.serving.app",
        "semseg.nowhere",
    }
    assert mentioned(text) == names
    assert resolves("semseg.measures.sliding.SlidingWindows.bands") and resolves("semseg.engines.torch.predict")
    assert not resolves("semseg.nowhere") and not resolves("semseg.measures.sliding.Nothing")
