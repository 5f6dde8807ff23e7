"""The import graph of actantd/ and actantctl/, read with ``ast``: no cycles, layers import downward only, the
CLI imports only the stdlib-only daemon modules, and no comment points at a document outside the repository.

docs/architecture.md draws the layers these rules encode.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actantd", "actantctl")

CLI_MAY_IMPORT = frozenset(
    {"actantd", "actantd.errors", "actantd.paths", "actantd.limits", "actantd.identity", "actantd.instances.state"}
)
"""The stdlib-only daemon modules ``actantctl`` shares (with their packages' ``__init__``)."""

LAYER_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # (importer prefix, forbidden prefixes, exempt importers)
    ("actantd.supervisor.", ("actantd.instances", "actantd.config", "actantd.launch", "actantd.rpc",
                             "actantd.manager", "actantd.daemon"),
     ("actantd.supervisor.process", "actantd.supervisor.start_check", "actantd.supervisor.health_watch",
      "actantd.supervisor.retry", "actantd.supervisor.restarts", "actantd.supervisor.control")),
    ("actantd.instances.", ("actantd.rpc", "actantd.manager", "actantd.daemon"), ()),
    ("actantd.config.", ("actantd.instances", "actantd.supervisor", "actantd.rpc", "actantd.manager",
                         "actantd.daemon"), ()),
    ("actantd.launch", ("actantd.supervisor.process", "actantd.instances.lifecycle", "actantd.rpc",
                        "actantd.manager", "actantd.daemon"), ()),
    ("actantd.rpc.", ("actantd.daemon",), ()),
    ("actantd.manager", ("actantd.rpc", "actantd.daemon"), ()),
)  # fmt: skip


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest project module ``name`` refers to (``actantd.supervisor.exits.watch_exit`` → the module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _raw_imports(module: str) -> Iterator[str]:
    """Every absolute name ``module`` imports, at any depth (function bodies and TYPE_CHECKING blocks too).

    The packages above an imported module (whose ``__init__`` Python runs first) are not counted: they are
    the modules' namespace, not a dependency the importer chose."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from pkg import submodule`` depends on the submodule; ``from mod import name`` on the module.
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base


def _edges(module: str) -> set[str]:
    targets = {_resolve(name) for name in _raw_imports(module)}
    return {t for t in targets if t is not None and t != module}


GRAPH = {module: _edges(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_graph_was_read() -> None:
    """Guards the other tests against passing on an empty graph."""
    assert {"actantd.daemon", "actantd.rpc.handlers.agent", "actantctl.cli"} <= set(MODULES)
    assert "actantd.manager" in GRAPH["actantd.rpc.services"]
    assert "actantd.supervisor.exits" in GRAPH["actantd.supervisor.process"]


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles (each line one strongly connected set of modules):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize(("importer", "forbidden", "exempt"), LAYER_RULES)
def test_layers_import_downward_only(importer: str, forbidden: tuple[str, ...], exempt: tuple[str, ...]) -> None:
    bad = []
    for module, targets in GRAPH.items():
        if not (module == importer or module.startswith(importer)) or module in exempt:
            continue
        for target in targets:
            if any(target == f or target.startswith(f + ".") for f in forbidden):
                bad.append(f"{module} -> {target}")
    assert not bad, "imports against the layering of docs/architecture.md:\n" + "\n".join(sorted(bad))


def test_only_the_entry_point_imports_the_daemon() -> None:
    importers = sorted(m for m, targets in GRAPH.items() if "actantd.daemon" in targets)
    assert importers == ["actantd.__main__"]


def test_the_cli_imports_only_stdlib_only_daemon_modules() -> None:
    used = {t for m, targets in GRAPH.items() if m.startswith("actantctl") for t in targets if t.startswith("actantd")}
    assert used, "actantctl imports nothing of actantd: the check below would pass vacuously"
    assert used <= CLI_MAY_IMPORT, f"actantctl imports {sorted(used - CLI_MAY_IMPORT)}"


def test_the_shared_modules_are_stdlib_only() -> None:
    """What the CLI imports must not pull in msgspec, psutil or uvloop, directly or through another module."""
    packages = {m.rpartition(".")[0] for m in CLI_MAY_IMPORT if "." in m}
    for module in sorted(CLI_MAY_IMPORT | packages):
        for name in _raw_imports(module):
            top = name.split(".")[0]
            if top in PACKAGES:
                target = _resolve(name)
                assert target in CLI_MAY_IMPORT | packages, f"{module} imports {target}, not a stdlib-only module"
            else:
                assert top in sys.stdlib_module_names or top == "__future__", f"{module} imports {name}"


_OUTSIDE_REFERENCE = re.compile(r"DESIGN §|DESIGN\.md|\.\./shared/")


def test_no_comment_points_outside_the_repository() -> None:
    """A reader of the repository has docs/architecture.md and docs/protocol.md, not the design notes."""
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in MODULES.values()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _OUTSIDE_REFERENCE.search(line)
    ]
    assert not hits, "\n".join(hits)
