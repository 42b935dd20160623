"""The shape of the code (issue 21): no import cycle between the project's modules (imports inside functions
count: they hide a cycle until the function runs), no module over 450 lines, no function over 80, and every
`TrainConfig` field an option of `refinenet train`."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import pytest

from refinenet.cli import build_parser
from refinenet.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("refinenet", "benchmarks")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `packages` under `root` (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its file: at the top, inside functions, under `if`.
    `from package import module` names the module; `from module import name` the module. A package's own
    __init__, run by Python before any of its modules, is not counted as imported by them."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package holding this module
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    modules = module_files(root, packages)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> b -> ... -> a) per strongly connected group of modules that import each other."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [cycle_through(group, graph) for group in groups]


def cycle_through(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def write_package(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_cycle_finder_sees_a_cycle_hidden_in_a_function_and_through_from_package_imports(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/a.py": "from pkg.sub import b\n",
        "pkg/sub/b.py": "def late():\n    from pkg import c\n",
        "pkg/c.py": "import json\nfrom pkg.a import thing\n",
        "pkg/d.py": "from . import a\nfrom .sub.b import late\n",  # relative, and into the cycle only
    })
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.d"] == {"pkg.a", "pkg.sub.b"}
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]
    write_package(tmp_path, {"pkg/c.py": "import json\n"})
    assert import_cycles(import_graph(tmp_path, ("pkg",))) == []


def test_no_module_of_the_project_imports_itself_back():
    cycles = import_cycles(import_graph(REPO))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(cycle) for cycle in cycles)


def test_the_graph_sees_the_projects_lazy_imports():
    # the finder must follow imports inside functions, or the test above proves nothing about them
    graph = import_graph(REPO)
    assert "benchmarks.efficiency.speed" in graph["benchmarks.efficiency.measure"]  # run_job's lazy import
    assert "benchmarks.tables.executors" in graph["benchmarks.tables.plan"]  # run_plan's lazy import


def project_files() -> list[Path]:
    return [*module_files(REPO).values(), REPO / "noxfile.py"]


@pytest.mark.parametrize("path", project_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_their_functions_stay_short(path):
    text = path.read_text()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: cut it along a seam"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines, line {node.lineno})"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def option_dests(cls, prefix: str = "") -> list[str]:
    """argparse destinations of `add_options(parser, cls)`: nested dataclasses under their field's prefix."""
    hints = typing.get_type_hints(cls)
    dests = []
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            dests += option_dests(hints[field.name], f"{prefix}{field.metadata['prefix']}_")
        else:
            dests.append(prefix + field.name)
    return dests


def test_every_train_config_field_is_an_option_of_refinenet_train():
    args = build_parser().parse_args(["train", "--dataset", "voc2012", "--data-root", "r", "--out", "o"])
    missing = [dest for dest in option_dests(TrainConfig) if not hasattr(args, dest)]
    assert not missing
    assert len(option_dests(TrainConfig)) > 30
