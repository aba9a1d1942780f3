"""The import graph of ember/ follows the layers of DESIGN.md: a module imports only from its own
floor or the floors below it, so that the structure cannot decay again. Every import statement
counts, also those inside functions (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "ember"

# Floors, lowest first (DESIGN.md draws them top down). A module's floor is that of the longest
# prefix of its dotted name listed here.
FLOORS = [
    ["ember.backend", "ember._version"],
    ["ember.tensor", "ember.function", "ember.creation", "ember.random", "ember.ops",
     "ember.gradcheck", "ember.testing"],
    ["ember.optim"],
    ["ember.nn"],
    ["ember.data", "ember.distributed"],  # the loader places batches on a mesh
    ["ember.jit"],
    ["ember.models"],
    ["ember.train"],
    ["ember.onnx"],  # export: reads modules of nn and ember.models, writes ONNX graphs
    ["ember.plot"],
    ["ember"],  # the facade: the everyday names of every floor below (ember.plot lazily)
    ["ember.cli", "ember.presets", "ember.__main__"],
]

# Known exceptions, each with its reason; the list may only shrink.
ALLOWED: set[tuple[str, str]] = set()


def floor(module: str) -> int:
    best, level = -1, None
    for i, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, level = len(name), i
    assert level is not None, f"{module} is on no floor of FLOORS; add it"
    return level


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ember in the file."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            for a in node.names:  # `from ember import nn` imports the submodule ember.nn
                full = f"{base}.{a.name}"
                out.append((node.lineno, full if _is_module(full) else base))
    return [(line, name) for line, name in out if name == "ember" or name.startswith("ember.")]


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (ROOT.parent / rel).with_suffix(".py").exists() or (ROOT.parent / rel).is_dir()


def upward_imports() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        me = module_name(path)
        for line, name in imports(path):
            if floor(name) > floor(me) and (me, name) not in ALLOWED:
                found.append(f"{path.relative_to(ROOT.parent)}:{line}: {me} (floor "
                             f"{floor(me)}) imports {name} (floor {floor(name)})")
    return found


def test_no_module_imports_from_a_floor_above_its_own():
    assert upward_imports() == []
    assert sorted(m for m in ALLOWED if m[0] not in {module_name(p) for p in ROOT.rglob(
        "*.py")}) == []  # an exception whose module is gone must go too


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "ember"
    (fake / "nn").mkdir(parents=True)
    (fake / "train").mkdir()
    (fake / "train" / "__init__.py").write_text("")
    (fake / "nn" / "__init__.py").write_text("def f():\n    from ember.train import x\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    assert upward_imports() == [
        "ember/nn/__init__.py:2: ember.nn (floor 3) imports ember.train (floor 7)"]
