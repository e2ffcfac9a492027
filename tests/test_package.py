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
