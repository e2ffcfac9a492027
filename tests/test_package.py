"""Package-wide rules: a light import, small files, typed public functions."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "blastoseg"


def test_import_blastoseg_loads_neither_torch_nor_napari():
    code = "import sys, blastoseg, blastoseg.cli; blastoseg.cli.build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'napari')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_source_file_over_400_lines():
    long = {p.relative_to(SRC).as_posix(): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def _public_functions(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def test_every_public_function_has_types():
    missing = []
    for path in SRC.rglob("*.py"):
        for name, fn in _public_functions(ast.parse(path.read_text())):
            args = [a for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs if a.arg not in ("self", "cls")]
            if fn.returns is None or any(a.annotation is None for a in args):
                missing.append(f"{path.relative_to(SRC)}:{fn.lineno} {name}")
    assert missing == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """The blastoseg modules a module imports, at any depth, outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names if a.name in modules)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & modules
            # `from package import submodule` needs the submodule, not what the package's __init__ adds.
            found.update(submodules or ({node.module} & modules))

    Visitor().visit(tree)
    return found


def test_no_import_cycles_and_no_private_names_imported():
    trees = {_module_name(p): ast.parse(p.read_text()) for p in SRC.rglob("*.py")}
    graph = {name: _imports(tree, set(trees)) - {name} for name, tree in trees.items()}
    private = [
        f"{name} imports {node.module}.{alias.name}"
        for name, tree in trees.items() for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("blastoseg")
        for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert private == []
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import cycle: " + " -> ".join((*path[path.index(name):], name))
        if name not in done:
            for dependency in sorted(graph[name]):
                visit(dependency, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_only_the_method_base_probes_methods_with_hasattr():
    probing = [f"{p.relative_to(SRC)}:{node.lineno}" for p in SRC.rglob("*.py") if p.name != "base.py"
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "hasattr" and "method" in ast.unparse(node.args[0])]
    assert probing == []
