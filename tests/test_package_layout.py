"""The package's floors: rooms by stage with no import cycle and no import that runs back up a floor, and modules
small enough to read (docs/layout.md, "The maple package, by stage")."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "workflow" / "scripts" / "maple"
# A room may import its own floor's rooms below it and any lower floor, never a higher one.
FLOORS = {"hub": 0, "runtime": 1, "track": 1, "train": 2, "data": 3, "config": 4, "evaluate": 4, "report": 4, "cost": 5}
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def maple_imports(path: Path) -> set[str]:
    """Every maple module a file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "maple":
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "maple")
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in maple_imports(path) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph (depth-first), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_check_finds_a_cycle():
    """The check above can fail: a cycle through a function-level import is found."""
    graph = {"maple.hub.a": {"maple.hub.b"}, "maple.hub.b": {"maple.hub.c"}, "maple.hub.c": {"maple.hub.a"}}
    assert find_cycle(graph) == ["maple.hub.a", "maple.hub.b", "maple.hub.c", "maple.hub.a"]
    assert find_cycle({"maple.hub.a": {"maple.hub.b"}, "maple.hub.b": set()}) is None


def test_no_import_runs_up_a_floor():
    wrong = []
    for name, targets in import_graph().items():
        room = name.split(".")[1] if name.count(".") else None
        if room not in FLOORS:
            continue
        for target in targets:
            other = target.split(".")[1] if target.count(".") else None
            if other in FLOORS and other != room and FLOORS[other] >= FLOORS[room]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, wrong


def test_every_module_is_in_a_room_and_small():
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        assert len(rel.parts) == 2 or rel.name == "__init__.py", f"{rel}: every module lives in a stage subpackage"
        assert rel.parts[0] in FLOORS or rel.name == "__init__.py", rel
    for path in (REPO / "workflow").rglob("*.py"):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(REPO)}: {lines} lines (at most {MAX_LINES})"
