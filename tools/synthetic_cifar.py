"""A CIFAR-10 of random pictures in CIFAR-10's real on-disk format (python pickles of dicts with
byte-string keys, `data` a (N, 3072) uint8 array of all red, then green, then blue values,
`labels` a list), for what needs CIFAR-10's files where the real ones cannot be fetched: the
tests (a few pictures) and GPU timings (the real sizes; accuracy on it means nothing).

    python -m tools.synthetic_cifar DATA_DIR [--per-batch 10000]
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

from vit_demo.data import DATASETS


def write_cifar10(root, per_batch=4, seed=0):
    """A tiny CIFAR-10 in the real on-disk format: python pickles of dicts with byte-string
    keys, `data` a (N, 3072) uint8 array (all red, then green, then blue), `labels` a list."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    written = {}
    for name in names:
        pixels = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": pixels,
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = (pixels, labels)
    meta = {
        b"num_cases_per_batch": per_batch,
        b"label_names": [n.encode() for n in DATASETS["cifar10"].class_names],
        b"num_vis": 3072,
    }
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the data folder: cifar-10-batches-py/ is written in it")
    parser.add_argument("--per-batch", type=int, default=10_000, help="pictures per file (CIFAR-10's own: 10,000)")
    arguments = parser.parse_args()
    write_cifar10(arguments.root, arguments.per_batch)
