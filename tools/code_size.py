"""How big the package's files and functions are, measured with `ast`: the files over a limit
of code lines and the functions over a limit of lines, largest first.

    python -m tools.code_size [--file-limit 400] [--function-limit 60] [folder ...]

A file's code lines leave out blank lines, comments and docstrings. A function's lines run
from its `def` to its last line, docstring included (what a reader has to hold). Exits 1 when
anything is over, so it can guard CI.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def docstring_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str, tree: ast.AST) -> int:
    """Lines holding a token that is not a comment, outside docstrings."""
    skip = docstring_lines(tree)
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if token.type == tokenize.ENDMARKER:
            continue
        lines.update(line for line in range(token.start[0], token.end[0] + 1) if line not in skip)
    return len(lines)


def functions(tree: ast.AST, path: Path) -> list[tuple[int, str]]:
    """(lines, where) of every function and method."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((node.end_lineno - node.lineno + 1, f"{path}:{node.lineno} {node.name}"))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", default=["vit_demo"])
    parser.add_argument("--file-limit", type=int, default=400)
    parser.add_argument("--function-limit", type=int, default=60)
    args = parser.parse_args()
    files, defs, total = [], [], 0
    for folder in args.folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
            relative = path.relative_to(REPO)
            count = code_lines(source, tree)
            total += count
            files.append((count, str(relative)))
            defs += functions(tree, relative)
    over_files = sorted((f for f in files if f[0] > args.file_limit), reverse=True)
    over_defs = sorted((d for d in defs if d[0] > args.function_limit), reverse=True)
    print(f"{len(files)} files, {total:,} code lines, {len(defs)} functions")
    print("largest files: " + ", ".join(f"{name} {count}" for count, name in sorted(files, reverse=True)[:5]))
    print("largest functions: " + ", ".join(f"{name} {count}" for count, name in sorted(defs, reverse=True)[:5]))
    print(f"files over {args.file_limit} code lines: {len(over_files)}")
    for count, name in over_files:
        print(f"  {count:5}  {name}")
    print(f"functions over {args.function_limit} lines: {len(over_defs)}")
    for count, name in over_defs:
        print(f"  {count:5}  {name}")
    return 1 if over_files or over_defs else 0


if __name__ == "__main__":
    sys.exit(main())
