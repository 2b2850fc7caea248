"""The import rules of ARCHITECTURE.md, checked statically (ast) over the whole package.

Every `import` of every module under registry/ is read without running anything. The test
fails when a part imports one it must not (the server importing the client, launcher or
builder; the client or launcher importing Flask or the server; the ground floor importing
anything above it; docker2aci importing anything but the ground floor), when the server
reaches into docker2aci's private modules, or when module-level imports form a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "registry"
GROUND_FLOOR = {"aci", "discovery", "signing"}
# Modules of the package root every part may use: they import nothing of ours.
ROOT_MODULES = {"registry", "registry.cooperative", "registry.errors", "registry.lazy",
                "registry.progress", "registry.records", "registry.resources"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # dotted module name (ours or a third-party top-level name)
    line: int
    module_level: bool  # executed when the importer is imported (not in a function/TYPE_CHECKING)
    in_function: bool = False  # inside a function body (run on first call)


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(body: list[ast.stmt], module_level: bool, in_function: bool = False
          ) -> Iterator[tuple[ast.stmt, bool, bool]]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, module_level, in_function
        elif isinstance(node, ast.If):
            inner = module_level and not _is_type_checking(node)
            yield from _walk(node.body, inner, in_function)
            yield from _walk(node.orelse, module_level, in_function)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *[handler.body for handler in node.handlers]):
                yield from _walk(block, module_level, in_function)
        elif isinstance(node, ast.With):
            yield from _walk(node.body, module_level, in_function)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(node.body, False, True)
        elif isinstance(node, ast.ClassDef):
            yield from _walk(node.body, module_level, in_function)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _walk([child], module_level, in_function)


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node, module_level, in_function in _walk(tree.body, True):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno, module_level, in_function)
            continue
        target = _resolve(name, is_package, node)
        submodules = [f"{target}.{alias.name}" for alias in node.names
                      if f"{target}.{alias.name}" in MODULES]
        # `from registry.aci import paths` imports the module registry.aci.paths; a name
        # that is not a module is read from `target` itself, which must have run by then.
        if len(submodules) < len(node.names):
            yield Import(name, target, node.lineno, module_level, in_function)
        for submodule in submodules:
            yield Import(name, submodule, node.lineno, module_level, in_function)


ALL_IMPORTS = [imp for name, path in MODULES.items() for imp in imports_of(name, path)]


def part_of(module: str) -> str | None:
    """`aci` for registry.aci.reader; None for the package root and third-party modules."""
    parts = module.split(".")
    if parts[0] != "registry" or module in ROOT_MODULES or len(parts) < 2:
        return None
    return parts[1]


def _violations(rule) -> list[str]:
    return [f"{imp.importer}:{imp.line} imports {imp.target}" for imp in ALL_IMPORTS
            if rule(imp)]


def test_the_scan_sees_the_package() -> None:
    parts = {part_of(name) for name in MODULES}
    assert {"aci", "discovery", "signing", "server", "client", "launcher", "build", "docker",
            "cli"} <= parts
    assert len(ALL_IMPORTS) > 300
    # Every relative and absolute import of ours resolves to a real module.
    unknown = [f"{imp.importer}:{imp.line} {imp.target}" for imp in ALL_IMPORTS
               if imp.target.split(".")[0] == "registry" and imp.target not in MODULES]
    assert unknown == []


def test_the_server_never_imports_the_client_launcher_or_builder() -> None:
    assert _violations(lambda imp: part_of(imp.importer) == "server"
                       and part_of(imp.target) in {"client", "launcher", "build"}) == []


def test_the_server_uses_only_docker2acis_public_api() -> None:
    assert _violations(lambda imp: part_of(imp.importer) == "server"
                       and imp.target.startswith("registry.docker.")) == []


def test_client_and_launcher_never_import_flask_or_the_server() -> None:
    def bad(imp: Import) -> bool:
        top = imp.target.split(".")[0]
        return part_of(imp.importer) in {"client", "launcher"} and (
            top in {"flask", "werkzeug", "sqlalchemy", "alembic", "gunicorn"}
            or part_of(imp.target) == "server")

    assert _violations(bad) == []


def test_the_ground_floor_imports_nothing_above_it() -> None:
    assert _violations(lambda imp: part_of(imp.importer) in GROUND_FLOOR
                       and part_of(imp.target) not in GROUND_FLOOR | {None}) == []


def test_docker2aci_depends_on_the_ground_floor_alone() -> None:
    """A pure converter: the format core, plus the ground floor's shared wording of network
    and TLS errors (registry.discovery); never the client, server, launcher, builder or CLI."""
    assert _violations(lambda imp: part_of(imp.importer) == "docker"
                       and part_of(imp.target) not in GROUND_FLOOR | {"docker", None}) == []


def _graph() -> dict[str, set[str]]:
    """Module-level import edges between our modules. Importing `a.b.c` from outside the
    package `a.b` also runs `a.b`'s __init__, so that is an edge too (inside the package the
    __init__ is already running; Python handles that)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in ALL_IMPORTS:
        if not imp.module_level or imp.target not in MODULES or imp.target == imp.importer:
            continue
        graph[imp.importer].add(imp.target)
        parts = imp.target.split(".")
        for depth in range(2, len(parts)):
            package = ".".join(parts[:depth])
            if not (imp.importer == package or imp.importer.startswith(package + ".")):
                graph[imp.importer].add(package)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert find_cycles(_graph()) == []


def test_no_cycle_hides_behind_a_function_local_or_type_checking_import() -> None:
    """A function-local import must not be what keeps two modules from a cycle."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in ALL_IMPORTS:
        if imp.target in MODULES and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    assert find_cycles(graph) == []


MODULE_NOTE = "# Function-local imports"


def _says_why(imp: Import) -> bool:
    """A comment on the three lines above the import, or one note for the whole module (a
    line starting with MODULE_NOTE, e.g. `# Function-local imports of registry.aci keep
    start-up fast`)."""
    lines = MODULES[imp.importer].read_text().splitlines()
    if any(line.lstrip().startswith(MODULE_NOTE) for line in lines):
        return True
    return any("#" in line for line in lines[max(0, imp.line - 4): imp.line])


@pytest.mark.parametrize("part", sorted(GROUND_FLOOR | {"server", "client", "launcher", "build",
                                                         "docker", "cli"}))
def test_function_local_imports_of_ours_say_why(part: str) -> None:
    """A function-local import of our own modules is there only to keep start-up fast (never
    to dodge a cycle: see the test above) and says so in a comment."""
    missing = sorted({f"{imp.importer}:{imp.line} imports {imp.target}" for imp in ALL_IMPORTS
                      if imp.in_function and part_of(imp.importer) == part
                      and imp.target.startswith("registry.") and not _says_why(imp)})
    assert missing == []
