"""Refactoring helper: move top-level definitions between modules and rewrite imports.

usage: python move.py SRC_MODULE DST_MODULE name [name ...]
  cuts the named top-level defs/classes/assignments out of SRC (with their leading comments/decorators),
  appends them to DST (created if missing), and rewrites every `from reasoning_lab.SRC import ...`
  in reasoning_lab/, tests/, experiments/ so the names come from DST.
"""

import ast
import sys
from pathlib import Path

ROOT = Path("/work/main")


def path_of(module: str) -> Path:
    return ROOT / "reasoning_lab" / (module.replace(".", "/") + ".py")


def block_ranges(source: str, names: set[str]):
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    ranges = []
    for node in tree.body:
        node_names = set()
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            node_names = {node.name}
        elif isinstance(node, ast.Assign):
            node_names = {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            node_names = {node.target.id}
        if node_names & names:
            start = node.lineno - 1
            if getattr(node, "decorator_list", None):
                start = node.decorator_list[0].lineno - 1
            while start > 0 and lines[start - 1].lstrip().startswith("#"):
                start -= 1
            ranges.append((start, node.end_lineno, node_names & names))
    return ranges, lines


def main():
    src, dst, *names = sys.argv[1:]
    names = set(names)
    src_path, dst_path = path_of(src), path_of(dst)
    ranges, lines = block_ranges(src_path.read_text(), names)
    found = set().union(*(r[2] for r in ranges)) if ranges else set()
    if found != names:
        sys.exit(f"not found in {src}: {names - found}")
    moved = []
    for start, end, _ in sorted(ranges, reverse=True):
        moved.insert(0, "".join(lines[start:end]))
        del lines[start:end]
    text = "".join(lines)
    while "\n\n\n\n" in text:
        text = text.replace("\n\n\n\n", "\n\n\n")
    src_path.write_text(text)
    existing = dst_path.read_text() if dst_path.exists() else '"""TODO"""\n\nfrom __future__ import annotations\n'
    dst_path.write_text(existing.rstrip("\n") + "\n\n\n" + "\n\n\n".join(m.strip("\n") for m in moved) + "\n")
    rewrite_imports(src, dst, names)


def rewrite_imports(src: str, dst: str, names: set[str]):
    for file in list((ROOT / "reasoning_lab").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")) + \
            list((ROOT / "experiments").rglob("*.py")):
        source = file.read_text()
        tree = ast.parse(source)
        lines = source.splitlines(keepends=True)
        edits = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == f"reasoning_lab.{src}":
                hit = [a for a in node.names if a.name in names]
                if not hit:
                    continue
                keep = [a for a in node.names if a.name not in names]
                indent = lines[node.lineno - 1][: len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
                new = ""
                if keep:
                    new += f"{indent}from reasoning_lab.{src} import {', '.join(fmt(a) for a in keep)}\n"
                if f"reasoning_lab.{dst}" != f"reasoning_lab.{src}":
                    new += f"{indent}from reasoning_lab.{dst} import {', '.join(fmt(a) for a in hit)}\n"
                edits.append((node.lineno - 1, node.end_lineno, new))
        if not edits:
            continue
        for start, end, new in sorted(edits, reverse=True):
            lines[start:end] = [new]
        file.write_text("".join(lines))
        print("rewrote", file.relative_to(ROOT))


def fmt(alias):
    return alias.name + (f" as {alias.asname}" if alias.asname else "")


if __name__ == "__main__":
    main()
