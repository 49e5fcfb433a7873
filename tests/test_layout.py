"""The layout the README draws: which stage folder may import which, and every folder installed as its package.

Imports are read with `ast` from every .py file under each folder, at module level and inside functions
(the lazy imports count too), so a forbidden import fails here naming its file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALLOWED = {  # folder -> the other folders it may import (README, "Layout")
    "core": set(),  # the ground floor: plumbing, importing no stage
    "data_prep": {"core"},
    "reranker": {"core"},
    "eval": {"core", "data_prep", "reranker"},
    "train": {"core", "data_prep", "reranker", "eval"},
    "serve": {"core", "data_prep", "reranker"},
    "inspector": {"core", "data_prep", "reranker", "eval", "serve"},
    "cli": {"core", "data_prep", "reranker", "eval", "train", "serve", "inspector"},
    "api": {"core", "data_prep", "reranker", "eval", "train", "serve", "inspector", "cli"},
    "configs": set(),
}
PACKAGE = {"api": "rerankforge", "train": "rerankforge.training"}  # others: rerankforge.<folder>
"""api/ is the root package (the public API, `python -m rerankforge`); train/ is rerankforge.training, so that
`rerankforge.train` is only the public API's call."""
FOLDER_OF = {package.rpartition(".")[2]: folder for folder, package in PACKAGE.items() if folder != "api"}
ANYONE_MAY_IMPORT = {"configs"}  # the shipped recipes: package data with a path helper, no code of a stage


def imported_folders(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, folder) of each rerankforge folder that `path` (in `package`) imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        modules: list[str] = []
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            base, named = _import_targets(node, package)
            # `from rerankforge import eval` imports the folder named after `import`
            modules = named if base is None else [base] if base != "rerankforge" else named[1:]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            modules = [node.args[0].value]
        for module in modules:
            parts = module.split(".")
            if parts[0] == "rerankforge" and len(parts) > 1:
                found.append((node.lineno, FOLDER_OF.get(parts[1], parts[1])))
    return found


def _import_targets(node: ast.Import | ast.ImportFrom, package: str) -> tuple[str | None, list[str]]:
    """What an import statement in `package` names: (None, the modules) for `import a.b`; for `from X import a`,
    (X made absolute, [X, X.a, ...]) -- `a` may be a module of X or a name in it."""
    if isinstance(node, ast.Import):
        return None, [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parent = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([node.module] if node.module else []))
    return base, [base, *(f"{base}.{alias.name}" for alias in node.names)]


def forbidden_imports(repo: Path) -> list[str]:
    problems = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((repo / folder).rglob("*.py")):
            relative = path.relative_to(repo)
            package = ".".join([_package(relative.parts[0]), *relative.parent.parts[1:]])
            for line, target in imported_folders(path, package):
                if target != folder and target not in allowed | ANYONE_MAY_IMPORT:
                    problems.append(f"{relative}:{line}: {folder} imports {target} (it may import "
                                    f"{', '.join(sorted(allowed)) or 'no other folder'})")
    return problems


def _package(folder: str) -> str:
    return PACKAGE.get(folder, f"rerankforge.{folder}")


def test_each_stage_imports_only_the_stages_below_it():
    problems = forbidden_imports(REPO)
    assert not problems, "imports against the layout (README, Layout):\n" + "\n".join(problems)


def module_imports(repo: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (lazy ones too), read with `ast` like `imported_folders`."""
    paths = {}
    for folder in ALLOWED:
        for path in (repo / folder).rglob("*.py"):
            parts = [_package(folder), *path.relative_to(repo / folder).with_suffix("").parts]
            paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            found = _import_targets(node, package)[1] if isinstance(node, (ast.Import, ast.ImportFrom)) else []
            for module in found:
                while module and module not in paths:
                    module = module.rpartition(".")[0]
                if module and module not in (name, "rerankforge"):  # the root package's names load lazily
                    targets.add(module)
        graph[name] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of `graph`: each set of modules that reach one another (strongly connected), sorted."""
    order, reach, stack, cycles = {}, {}, [], []

    def visit(module: str) -> None:
        order[module] = reach[module] = len(order)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in order:
                visit(target)
                reach[module] = min(reach[module], reach[target])
            elif target in stack:
                reach[module] = min(reach[module], order[target])
        if reach[module] == order[module]:
            members = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(members) > 1:
                cycles.append(sorted(members))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return sorted(cycles)


def test_no_module_imports_itself_round_a_circle():
    """Lazy imports count: a circle broken only by a function-level import still ties the modules together."""
    cycles = import_cycles(module_imports(REPO))
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_circle_finder_finds_a_lazy_circle(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.py").write_text("from .b import x\n")
    (tmp_path / "train" / "b.py").write_text("def f():\n    from rerankforge.training.c import y\n")
    (tmp_path / "train" / "c.py").write_text("import rerankforge.training.a\n")
    (tmp_path / "train" / "d.py").write_text("from . import a\n")
    assert import_cycles(module_imports(tmp_path)) == [
        ["rerankforge.training.a", "rerankforge.training.b", "rerankforge.training.c"]]


def test_only_entry_points_import_the_cli():
    """The umbrella CLI sits on top: no stage imports it; the `rerankforge` script and `python -m rerankforge`
    (api/__main__.py) run it."""
    tomllib = pytest.importorskip("tomllib")
    assert all("cli" not in allowed for folder, allowed in ALLOWED.items() if folder not in ("cli", "api"))
    assert [path.name for path in (REPO / "api").rglob("*.py") if "rerankforge.cli" in path.read_text()] == [
        "__main__.py"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["rerankforge"].partition(":")
    assert module == "rerankforge.cli.main" and function == "main"


def test_the_checker_reads_lazy_relative_and_from_package_imports(tmp_path):
    """So the test above can fail: each way of importing eval from serve is caught, with its line."""
    (tmp_path / "serve" / "sub").mkdir(parents=True)
    (tmp_path / "serve" / "a.py").write_text("import os\nfrom rerankforge import eval\n")
    (tmp_path / "serve" / "sub" / "b.py").write_text(
        "def f():\n    from ...eval.metrics import mean\n    import rerankforge.training.loop\n"
        "    from ..pipeline import Pipeline\n")
    (tmp_path / "serve" / "c.py").write_text("import importlib\nm = importlib.import_module('rerankforge.eval.cli')\n")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "main.py").write_text("from rerankforge.training.cli import train_main\n")
    assert forbidden_imports(tmp_path) == [
        "serve/a.py:2: serve imports eval (it may import core, data_prep, reranker)",
        "serve/c.py:2: serve imports eval (it may import core, data_prep, reranker)",
        "serve/sub/b.py:2: serve imports eval (it may import core, data_prep, reranker)",
        "serve/sub/b.py:3: serve imports train (it may import core, data_prep, reranker)",
    ]


def test_every_folder_installs_as_its_package():
    """Each folder (and any sub-package) is listed and mapped in pyproject.toml, so a regular install
    ships it: setuptools installs only the packages named."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    for folder in ALLOWED:
        assert setuptools["package-dir"][_package(folder)] == folder
        for init in (REPO / folder).rglob("__init__.py"):
            package = ".".join([_package(folder), *init.parent.relative_to(REPO / folder).parts])
            assert package in setuptools["packages"], f"{init.parent.relative_to(REPO)} is not installed"
    folders = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert folders <= set(ALLOWED), f"place {sorted(folders - set(ALLOWED))} in the import graph (ALLOWED)"


def test_a_regular_install_holds_the_public_api_and_every_stage(tmp_path):
    """The wheel (what `pip install .` installs) puts the root package and each folder under rerankforge/,
    and they import from there, beside the editable install the tests run on."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(REPO)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("rerankforge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"rerankforge/__init__.py", "rerankforge/__main__.py", "rerankforge/training/loop.py",
            "rerankforge/core/errors.py", "rerankforge/configs/demo_scifact.yaml"} <= names
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    probe = ("import rerankforge, rerankforge.core.commands, rerankforge.training.config as c; "
             "print(rerankforge.__file__, c.__file__, rerankforge.Reranker.__module__)")
    shown = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONPATH": str(tmp_path / "site")}).stdout.split()
    assert [Path(p).is_relative_to(tmp_path / "site") for p in shown[:2]] == [True, True]
    assert shown[2] == "rerankforge.reranker.scoring"


MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS: dict[str, str] = {}
"""'folder/file.py:function' -> why it may be longer than MAX_FUNCTION_LINES (none may, today)."""


def test_no_function_of_the_package_is_longer_than_a_screen():
    long = []
    for folder in ALLOWED:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    where = f"{path.relative_to(REPO)}:{node.name}"
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES and where not in LONG_FUNCTIONS:
                        long.append(f"{where} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (split them, or list why in LONG_FUNCTIONS): {long}"
