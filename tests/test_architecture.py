"""The structure the code keeps (ARCHITECTURE.md): no import circles, data flowing one way
(models never import training, evaluation, the registry or the CLI; nothing imports the CLI;
rl/ below the models), a thin CLI, no family names switched on outside the families' own
modules, names resolved by reference (no "module:Name" strings, no importlib but the lazy
`genlab` package), config.json read by `Run` alone, and functions short enough to read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import genlab

SRC = Path(genlab.__file__).parent


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Every genlab module -> the genlab modules it imports anywhere (functions included)."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in mods else base)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_circles():  # the test above cannot pass vacuously
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert len(import_graph()) > 50


def test_data_flows_one_way():
    graph = import_graph()
    forbidden = ("genlab.training", "genlab.evaluation", "genlab.cli", "genlab.families",
                 "genlab.runs", "genlab.pictures", "genlab.sampling")  # fmt: skip
    for name, targets in graph.items():
        if name.startswith("genlab.models"):
            bad = [t for t in targets if t.startswith(forbidden)]
            assert not bad, f"{name} imports {bad}"
        if not name.startswith("genlab.cli") and name != "genlab.__main__":
            assert not [t for t in targets if t.startswith("genlab.cli")], name
        if name.startswith("genlab.rl"):  # environments and replay, below the models
            bad = [t for t in targets if t.startswith((*forbidden, "genlab.models"))]
            assert not bad, f"{name} imports {bad}"


def test_cli_modules_are_thin():
    for path in (SRC / "cli").glob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 300, f"{path.name}: {lines} lines"
        tree = ast.parse(path.read_text())
        classes = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        assert not [c for c in classes if "Module" in c or "Config" in c], path.name


def test_no_family_names_are_switched_on_outside_their_modules():
    from genlab.families import FAMILIES

    names = "|".join(re.escape(n) for n in FAMILIES)
    switch = re.compile(rf"""(==|!=)\s*["']({names})["']|["']({names})["']\s*(==|!=)""")
    offenders = []
    for name, path in modules().items():
        if name.startswith("genlab.models") or name == "genlab.families":
            continue  # the families' own modules
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if switch.search(line) and "family" in line:
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []


LONGEST = 120
"""Lines of a function's body (its signature, the argument table, aside)."""


def long_functions(tree: ast.AST, where: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.end_lineno - node.body[0].lineno + 1
            if body > LONGEST:
                found.append(f"{where}:{node.lineno} {node.name}: {body} lines")
    return found


def test_no_function_is_longer_than_a_reader_can_hold():
    offenders = []
    for name, path in modules().items():
        offenders += long_functions(ast.parse(path.read_text()), name)
    assert offenders == []
    body = "\n".join(["def f(\n    a,\n    b,\n):"] + ["    x = 1"] * (LONGEST + 1))
    assert long_functions(ast.parse(body), "t") == ["t:1 f: 121 lines"]  # it can fail


MODULE_NAME = re.compile(r"""["']genlab(\.\w+)+:\w+["']""")


def test_names_are_resolved_by_reference_not_by_strings():
    """No "genlab.x:Y" strings and no importlib outside the lazy `genlab` package itself.

    `importlib.metadata` (a wheel's files, a version) is allowed: it imports nothing by name.
    """
    offenders = []
    for name, path in modules().items():
        if name == "genlab":  # `genlab.train` etc. import their modules on first use
            continue
        text = path.read_text()
        offenders += [f"{name}: {m.group(0)}" for m in MODULE_NAME.finditer(text)]
        # importlib.metadata finds an installed distribution's files; it resolves no names
        code = text.replace("from importlib import metadata", "")
        if "importlib" in code or "__import__" in code:
            offenders.append(f"{name}: importlib")
    assert offenders == []
    assert MODULE_NAME.search('step="genlab.training.gan:GANStep"')


def test_config_json_is_read_by_run_alone():
    """`Run.open` reads and checks config.json; everything else is given the opened Run."""
    offenders = []
    for name, path in modules().items():
        text = path.read_text()
        if "read_config" in text:
            offenders.append(f"{name}: read_config")
        if name != "genlab.runs" and re.search(r"(CONFIG|config\.json[\"'])\)?\.read_text", text):
            offenders.append(f"{name}: reads config.json")
    assert offenders == []


def test_every_family_has_one_training_step_and_curves_are_of_families():
    from genlab.families import FAMILIES
    from genlab.pictures.curves import CURVES
    from genlab.training.registry import STEPS
    from genlab.training.step import Step

    assert set(STEPS) == set(FAMILIES)
    assert all(issubclass(step, Step) for step in STEPS.values())
    assert set(CURVES) <= set(FAMILIES)
