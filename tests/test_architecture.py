"""The package's structure: its import graph has no cycle, and its modules import each other at the top only."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reasoning_lab"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def own_imports(node: ast.AST, modules: set[str]) -> set[str]:
    """The package's modules that an import statement names (`from reasoning_lab import synthetic` included)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "reasoning_lab":
        named = {f"{node.module}.{a.name}" for a in node.names} & modules
        return named | ({node.module} & modules if not named else set())
    return set()


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """{module: the package's modules it imports, anywhere in it}, and every import made inside a function."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph, inner = {}, []
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        graph[name] = set().union(*(own_imports(n, modules) for n in ast.walk(tree)), set()) - {name}
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner += [f"{name}:{n.lineno} imports {', '.join(sorted(own_imports(n, modules)))}"
                          for n in ast.walk(function) if own_imports(n, modules)]
    return graph, inner


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_import_graph_has_no_cycle():
    graph, _ = import_graph()
    assert "reasoning_lab.data" in graph["reasoning_lab.stages.warmup"]  # the walk sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_modules_import_each_other_at_the_top_only():
    """An import inside a function hides a dependency (and a cycle) from a reader; heavy third-party
    imports (wandb, matplotlib, bitsandbytes) may stay lazy, the package's own may not."""
    _, inner = import_graph()
    assert inner == []


def test_leaf_modules_import_nothing_of_the_package():
    graph, _ = import_graph()
    for leaf in ("errors", "problem", "distributed", "stats", "answers"):
        assert graph[f"reasoning_lab.{leaf}"] == set(), leaf


def test_a_stage_module_reads_at_one_level():
    """Each function of reasoning_lab/stages/ fits on a screen (at most 60 lines): a recipe reads as set-up, train,
    finish, and the details live in the functions it names."""
    long = []
    for path in sorted((PACKAGE / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


# the layers of docs/ARCHITECTURE.md, lowest first: a module imports its own layer or lower ones, never a higher one
LAYERS = [
    {"errors", "problem", "distributed", "stats", "answers", "batching", "stages", "schedules", "prompt_selection",
     "timing"},
    {"files", "rewards", "synthetic", "decoding", "rollouts"},
    {"checkpoints", "config", "readers"},
    {"model", "data"},
    {"contamination"},
    {"sft", "callbacks", "trl_trainers", "curriculum", "signals", "adaptive", "ppo"},
    {"report", "compare", "tracking"},
    {"sweep_report", "evaluation", "card", "lm_eval"},
    {"stages.warmup", "stages.curriculum", "stages.rl", "stages.eval", "stages.answer", "stages.pipeline"},
    {"__main__", "", "dashboard"},
]


def layer_of(module: str) -> int:
    short = module.removeprefix("reasoning_lab").lstrip(".")
    return next(i for i, names in enumerate(LAYERS) if short in names)


def test_every_module_has_a_layer_and_imports_point_down():
    graph, _ = import_graph()
    unplaced = [m for m in graph if not any(m.removeprefix("reasoning_lab").lstrip(".") in s for s in LAYERS)]
    assert unplaced == [], f"give these modules a layer in LAYERS and docs/ARCHITECTURE.md: {unplaced}"
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer_of(b) > layer_of(a)]
    assert upward == [], f"imports that point up: {upward}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_curriculum_signal_loads_no_report_and_no_evaluation():
    graph, _ = import_graph()
    loaded = reachable(graph, "reasoning_lab.adaptive") | reachable(graph, "reasoning_lab.signals")
    assert not loaded & {f"reasoning_lab.{m}" for m in ("report", "compare", "sweep_report", "tracking", "evaluation")}


def test_stage_functions_stay_short_with_few_parameters():
    """A stage module reads like its recipe: no function over 60 lines or 6 parameters (bundle them in a dataclass)."""
    long = []
    for path in sorted((PACKAGE / "stages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg != "self"]
                lines = node.end_lineno - node.lineno + 1
                if lines > 60 or len(params) > 6:
                    long.append(f"{path.name}:{node.name} ({lines} lines, {len(params)} parameters)")
    assert long == []


def test_every_package_module_has_a_test_module():
    """reasoning_lab/<m>.py is tested by tests/test_<m>.py (a stage module also by test_<m>_stage.py, __main__ by
    test_main.py, the stage registry by test_stages.py); a module without a function of its own is exempt."""
    tests = {p.stem for p in (PACKAGE.parent / "tests").glob("test_*.py")}
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(tree)):
            continue
        stem = path.stem.strip("_")
        if path.name == "__init__.py":
            stem = path.parent.name
        names = {f"test_{stem}", f"test_{stem}_stage"} if path.parent.name == "stages" else {f"test_{stem}"}
        if not names & tests:
            missing.append(f"{path.relative_to(PACKAGE.parent)}: {' or '.join(sorted(names))}.py")
    assert missing == []


def test_no_test_of_the_package_imports_the_experiments():
    """The benchmarks may change freely: their helpers are tested beside them (experiments/test_bench.py)."""
    importing = [p.name for p in sorted((PACKAGE.parent / "tests").glob("*.py"))
                 if any(isinstance(n, (ast.Import, ast.ImportFrom)) and "experiments" in ast.unparse(n).split()[1]
                        for n in ast.walk(ast.parse(p.read_text())))]
    assert importing == []
