"""The dependency rule of tools/ (see tools/README.md), read from the source with ast: every
import, at module level or inside a function, counts.

  * training/ imports nothing of tools/ but tools.node;
  * tools.node imports nothing of tools/ outside tools.node;
  * no library module (a subpackage of tools/, tools.cli, tools.errors) imports a command module;
  * the subpackages (and tools.cli, tools.errors) form no import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
SUBPACKAGES = sorted(p.name for p in TOOLS.iterdir() if (p / "__init__.py").is_file())
SHARED = ["cli", "errors"]  # top-level library modules every layer above may use
COMMANDS = sorted(p.stem for p in TOOLS.glob("*.py") if p.stem not in SHARED + ["__init__"])


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Fully qualified names of the modules (or module attributes) `path` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the package
                base = _module_name(path).split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def tools_unit(name: str) -> str | None:
    """The layer unit a tools.* name belongs to: 'node', 'wire', ..., 'cli', 'errors', or
    'command:<name>'; None outside tools/ (and for the bare package `tools`)."""
    parts = name.split(".")
    if parts[0] != "tools" or len(parts) < 2:
        return None
    if parts[1] in SUBPACKAGES or parts[1] in SHARED:
        return parts[1]
    if parts[1] in COMMANDS:
        return "command:" + parts[1]
    return "command:" + parts[1]  # an unknown top-level name: treat as a command


def _files(top: Path):
    return sorted(p for p in top.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_layer_units_exist():
    """The rule below checks something: the layers and commands are where this test expects."""
    assert {"node", "wire", "sim", "esp", "bench"} <= set(SUBPACKAGES)
    assert {"flash", "hil", "twin", "monitor", "record", "config"} <= set(COMMANDS)
    assert any(tools_unit(n) == "node" for p in _files(ROOT / "training") for n in imports_of(p))


def test_training_imports_only_tools_node():
    bad = [
        (str(p.relative_to(ROOT)), n)
        for p in _files(ROOT / "training")
        for n in imports_of(p)
        if tools_unit(n) not in (None, "node")
    ]
    assert not bad, f"training/ may import only tools.node: {bad}"


def test_node_imports_nothing_else_of_tools():
    bad = [
        (str(p.relative_to(ROOT)), n)
        for p in _files(TOOLS / "node")
        for n in imports_of(p)
        if tools_unit(n) not in (None, "node")
    ]
    assert not bad, f"tools.node may import only tools.node: {bad}"


def test_libraries_do_not_import_commands():
    libs = [p for s in SUBPACKAGES for p in _files(TOOLS / s)] + [TOOLS / f"{s}.py" for s in SHARED]
    bad = [
        (str(p.relative_to(ROOT)), n)
        for p in libs
        for n in imports_of(p)
        if (tools_unit(n) or "").startswith("command:")
    ]
    assert not bad, f"library modules must not import command modules: {bad}"


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {u: set() for u in SUBPACKAGES + SHARED}
    for unit in SUBPACKAGES + SHARED:
        files = _files(TOOLS / unit) if unit in SUBPACKAGES else [TOOLS / f"{unit}.py"]
        for p in files:
            for n in imports_of(p):
                u = tools_unit(n)
                if u in graph and u != unit:
                    graph[unit].add(u)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u):
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                return stack[stack.index(v) :] + [v]
            if v not in state and (c := visit(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(graph):
        if u not in state and (c := visit(u)):
            return c
    return None


def test_no_import_cycle_between_subpackages():
    assert find_cycle(unit_graph()) is None, " -> ".join(find_cycle(unit_graph()))


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
