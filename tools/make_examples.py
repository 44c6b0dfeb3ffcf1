"""Cut the example pictures the app ships from the real test sets.

    python -m tools.make_examples [--data-dir DIR] [--out examples]

For every dataset whose test set is on disk, the first test image of each class is
saved as `<out>/<dataset>/<class index>-<class name>-<test index>.png` at its original
size (a few hundred bytes each). Datasets that are missing are skipped with a note.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from vit_demo.data import DATASETS, DatasetCorruptError, DatasetNotFoundError, load_split, to_picture


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def make_examples(dataset: str, data_dir: str | None, out: Path) -> list[Path]:
    spec = DATASETS[dataset]
    test = load_split(dataset, train=False, data_dir=data_dir, download=False)
    folder = out / spec.key
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    written = []
    for class_index, class_name in enumerate(spec.class_names):
        index = int((test.labels == class_index).nonzero()[0])
        image = to_picture(test.images[index])
        path = folder / f"{class_index}-{slug(class_name)}-{index:05d}.png"
        image.save(path, optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="datasets folder (default: $VIT_DEMO_DATA, else the per-user cache)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "examples")
    args = parser.parse_args(argv)
    for dataset in DATASETS:
        try:
            written = make_examples(dataset, args.data_dir, args.out)
        except (DatasetNotFoundError, DatasetCorruptError) as error:
            print(f"skipped {dataset}: {str(error).splitlines()[0]}", file=sys.stderr)
            continue
        size = sum(p.stat().st_size for p in written)
        print(f"{dataset}: {len(written)} pictures, {size:,} bytes in {written[0].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
