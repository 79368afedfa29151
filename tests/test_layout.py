"""The engine's layout: imports go one way, and the engine and the scores know
nothing of FiftyOne. Read from the source (every import statement, those
inside functions too), so a cycle hidden behind a late import fails here."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "cam_core"

# subpackages, each importing only those before it (and the small shared modules)
ORDER = ["engine", "scoring", "media", "models", "runs", "compute"]
SHARED = {"errors", "skips", "labels"}


def modules():
    """``{dotted name: path}`` of every module of cam_core."""
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name, path, known):
    """The cam_core modules (and the other top-level packages) ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    local, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                (local if alias.name in known else external).add(alias.name if alias.name in known else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if target.split(".")[0] != "cam_core":
                external.add(target.split(".")[0])
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                local.add(sub if sub in known else target)
    return local, external


def graph():
    known = modules()
    return {n: imports(n, p, known) for n, p in known.items()}, known


def test_no_import_cycle_between_modules():
    g, _ = graph()
    edges = {n: {m for m in local if m != n} for n, (local, _) in g.items()}
    state, cycle = {}, []

    def visit(n, path):
        state[n] = "open"
        for m in sorted(edges.get(n, ())):
            if state.get(m) == "open":
                cycle.append(path[path.index(m):] + [m] if m in path else [n, m])
            elif m not in state:
                visit(m, path + [m])
        state[n] = "done"

    for n in sorted(edges):
        if n not in state:
            visit(n, [n])
    assert not cycle, cycle


def test_subpackages_import_one_way():
    g, _ = graph()
    wrong = []
    for n, (local, _) in g.items():
        parts = n.split(".")
        if len(parts) < 2 or parts[1] not in ORDER:
            continue
        mine = ORDER.index(parts[1])
        for m in local:
            other = m.split(".")[1] if m.count(".") else None
            if other is None:
                wrong.append((n, m))  # nothing below the top imports cam_core itself
            elif other in ORDER and ORDER.index(other) > mine:
                wrong.append((n, m))
    assert not wrong, wrong


def test_shared_modules_import_only_each_other_and_scoring():
    g, _ = graph()
    for name in SHARED:
        local, _ = g[f"cam_core.{name}"]
        assert {m.split(".")[1] for m in local} <= SHARED | {"scoring"}, (name, local)


def test_engine_and_scores_never_import_fiftyone():
    g, _ = graph()
    for n, (_, external) in g.items():
        if n.split(".")[1:2] in (["engine"], ["scoring"]):
            assert "fiftyone" not in external and "eta" not in external, n


def test_no_module_over_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_the_engine_imports_without_fiftyone():
    """The engine and the scores work in a process where FiftyOne cannot be imported."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['fiftyone'] = None\n"
        "import importlib.util, types\n"
        # cam_core/__init__ imports everything; load the subpackages without it
        f"pkg = types.ModuleType('cam_core'); pkg.__path__ = [{str(ROOT)!r}]; sys.modules['cam_core'] = pkg\n"
        "import cam_core.engine, cam_core.scoring, cam_core.scoring.road\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
