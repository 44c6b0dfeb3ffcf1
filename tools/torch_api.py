"""The torch API vit_demo uses, and whether an installed torch has all of it.

A ZeroGPU Space runs on the torch ZeroGPU installs (2.11.0, the newest on its list), older than
the one developed on: code that calls something newer would pass here and fail there. This
lists every `torch.…`, `nn.…` and `F.…` attribute chain in vit_demo (read from the source, with
the module aliases the code uses) and checks that each resolves in the torch it runs under.

    python -m tools.torch_api --check              # every chain resolves in this torch
    python -m tools.torch_api --write tools/torch_api_2.11.txt   # under torch 2.11: record them

tests/test_torch_api.py compares the chains in use with the recorded file: a chain that is not in
it has not been checked on 2.11, and the test says how to check it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vit_demo"
ALIASES = {"torch": "torch", "nn": "torch.nn", "F": "torch.nn.functional"}


def _chain(node: ast.Attribute) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in ALIASES:
        return [ALIASES[node.id], *reversed(parts)]
    return None


def chains_in_use(package: Path = PACKAGE) -> set[str]:
    """Every dotted torch name the package's code refers to ("torch.nn.functional.pad")."""
    found = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        outermost = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in outermost:
                chain = _chain(node)
                if chain:
                    found.add(".".join(chain))
    return found


def resolves(name: str) -> bool:
    """`name` is an attribute chain that exists in the installed torch."""
    root, *rest = name.split(".")
    modules = [root]
    obj = importlib.import_module(root)
    for part in rest:
        modules.append(part)
        if not hasattr(obj, part):
            try:
                obj = importlib.import_module(".".join(modules))
                continue
            except ImportError:
                return False
        obj = getattr(obj, part)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check every chain against this torch")
    parser.add_argument("--write", type=Path, help="record the chains (all must resolve in this torch)")
    args = parser.parse_args()
    import torch

    chains = sorted(chains_in_use())
    missing = [name for name in chains if not resolves(name)]
    print(f"torch {torch.__version__}: {len(chains)} names in use, {len(missing)} missing")
    for name in missing:
        print(f"  missing: {name}")
    if args.write and not missing:
        args.write.write_text(f"# resolved under torch {torch.__version__}\n" + "\n".join(chains) + "\n")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
