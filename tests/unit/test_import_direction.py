"""Imports point one way (see docs/architecture.md): a module may import only modules of a lower layer."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "mmhallu_eval"

LAYERS = {
    "types": 0, "errors": 0, "terminal": 0, "reasoning": 0, "prompts": 0, "redact": 0, "heap": 0, "outputs": 1,
    "metrics": 1, "paired": 1, "resample": 1,
    "measure": 2, "options": 2,
    "task": 3,
    "files": 4, "registry": 4, "nltk_resources": 4, "quiet": 4,
    "data": 5, "annotations": 5,
    "cache": 6, "scoring": 6,
    "backends": 7, "interop": 7,
    "rundir": 8,
    "benchmarks": 8,
    "runner": 9, "world": 9,
    "report": 10,
    "train": 11,
    "demo": 12,
    "cli": 13,
    "__init__": 14,
}


def _module_key(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """The top-level keys (first part under mmhallu_eval, or mmhallu_tasks) of everything `path` imports,
    relative imports resolved against the file's own package, however deep it sits."""
    tree = ast.parse(path.read_text())
    package = ["mmhallu_eval", *path.relative_to(PKG).parts[:-1]]
    found: set[str] = set()

    def add(dotted: str) -> None:
        parts = dotted.split(".")
        if parts[0] == "mmhallu_tasks":
            found.add("mmhallu_tasks")
        elif parts[0] == "mmhallu_eval" and len(parts) > 1:
            found.add(parts[1])

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                add(node.module or "")
                continue
            base = package[: len(package) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module:
                add(target)
            else:  # from . import x, y
                for alias in node.names:
                    add(f"{target}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
    return found


def test_core_modules_import_only_lower_layers():
    bad = []
    for path in PKG.rglob("*.py"):
        key = _module_key(path)
        assert key in LAYERS, f"{path.relative_to(ROOT)}: add module {key!r} to the layer table"
        for imported in _imports(path):
            if imported == key:
                continue
            if imported == "mmhallu_tasks":
                bad.append(f"{path.relative_to(ROOT)} imports the task plugins")
            elif LAYERS.get(imported, 99) >= LAYERS[key]:
                bad.append(f"{path.relative_to(ROOT)} (layer {LAYERS[key]}) imports {imported} (layer {LAYERS.get(imported)})")
    assert not bad, "\n".join(bad)


def test_task_plugins_use_only_the_public_api():
    bad = []
    for path in (ROOT / "tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("mmhallu_eval."):
                bad.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
            if isinstance(node, ast.Import):
                bad += [f"{path.relative_to(ROOT)}: import {a.name}" for a in node.names if a.name.startswith("mmhallu_eval.")]
    assert not bad, "task plugins must import from `mmhallu_eval` only:\n" + "\n".join(bad)


def test_scoring_path_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, mmhallu_eval.cli, mmhallu_eval.scoring, mmhallu_tasks.pope.task; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


#: the embedded default (the demo), the offline fixtures and the commands that write benchmark files in a benchmark's
#: official format are applications of the built-in tasks: they may name them
APPLICATIONS = ("demo.py", "world/", "cli/world.py")


def test_core_never_names_a_built_in_task():
    """What the core needs from a task is a declared capability, not a lookup by name: no string in a core module
    equals a built-in task's name."""
    tasks = {"pope", "mme", "chair", "mmhal", "finer_comprecap", "finer_docci"}
    bad = []
    for path in PKG.rglob("*.py"):
        rel = str(path.relative_to(PKG))
        if rel.startswith(APPLICATIONS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in tasks:
                bad.append(f"{rel}:{node.lineno} names task {node.value!r}")
    assert not bad, "\n".join(bad)
