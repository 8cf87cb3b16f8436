import ast
import pathlib

for f in sorted(pathlib.Path("reasoning_lab").rglob("*.py")):
    if f.name == "bench.py":
        continue
    src = f.read_text()
    tree = ast.parse(src)
    lines = src.splitlines(keepends=True)
    spans, hoisted = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("reasoning_lab"):
                    spans.append((sub.lineno - 1, sub.end_lineno))
                    names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in sub.names)
                    hoisted.append(f"from {sub.module} import {names}\n")
    if not spans:
        continue
    for start, end in sorted(set(spans), reverse=True):
        del lines[start:end]
        # drop a blank line left directly after a removed import block when the previous line is blank or a docstring end
        if start < len(lines) and lines[start].strip() == "" and (start == 0 or lines[start-1].strip() == "" or lines[start-1].rstrip().endswith('"""') or lines[start-1].rstrip().endswith(":")):
            del lines[start]
    text = "".join(lines)
    anchor = "from __future__ import annotations\n"
    i = text.index(anchor) + len(anchor)
    text = text[:i] + "\n" + "".join(dict.fromkeys(hoisted)) + text[i:]
    f.write_text(text)
    print("hoisted", f, len(spans))
