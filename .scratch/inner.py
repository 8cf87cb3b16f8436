import ast
import pathlib

for f in sorted(pathlib.Path("reasoning_lab").rglob("*.py")):
    tree = ast.parse(f.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("reasoning_lab") or isinstance(sub, ast.ImportFrom) and sub.level:
                    print(f, sub.lineno, sub.module, [a.name for a in sub.names])
                if isinstance(sub, ast.Import) and any(a.name.startswith("reasoning_lab") for a in sub.names):
                    print(f, sub.lineno, [a.name for a in sub.names])
