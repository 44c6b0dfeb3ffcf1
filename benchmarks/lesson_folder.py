"""What a lesson's folder of pictures (`dataset_folder`) costs the server: listing it, reading it
once (decoding and preparing every picture; against decoding each JPEG whole, in the same run)
and each page's later look (a listing, then the kept dataset), for a folder at the limit of
2,000 pictures, or phone photos with `--side 4000`.

    python -m benchmarks.lesson_folder [--classes 10] [--per-class 200] [--side 480] [--repeat 3]

The pictures are JPEGs `--side` pixels wide and 3/4 as tall, drawn with shapes on smooth noise
so they neither compress to nothing nor decode unusually fast; they are written to a temporary
folder that is removed afterwards. (2,000 of 640x480 are over the 500-megapixel budget of a
dataset, own_data.MAX_TOTAL_PIXELS, and are refused with that sentence.) Printed: the CPU
line, then the median seconds of each step and the memory the kept dataset takes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from vit_demo import own_data
from vit_demo.machine import Machine
from vit_demo.own_folder import list_folder, read_folder
from vit_demo.service import own_sets


def write_folder(root: Path, classes: int, per_class: int, side: int) -> int:
    """`classes` class folders of `per_class` JPEGs each; their bytes in all."""
    rng = np.random.default_rng(0)
    total = 0
    for label in range(classes):
        folder = root / f"class {label:02d}"
        folder.mkdir(parents=True)
        for number in range(per_class):
            noise = rng.integers(0, 255, (side * 3 // 32, side // 8, 3), dtype=np.uint8)  # smooth, as photos are
            image = Image.fromarray(noise).resize((side, side * 3 // 4), Image.Resampling.BILINEAR)
            draw = ImageDraw.Draw(image)
            box = (side // 4 + number % 20, side // 8, side * 3 // 4, side // 2 + label * 5)
            if label % 2:
                draw.ellipse(box, fill=(40 * label % 256, 120, 200))
            else:
                draw.rectangle(box, fill="red")
            path = folder / f"{number:04d}.jpg"
            image.save(path, quality=85)
            total += path.stat().st_size
    return total


def timed(step, repeat: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def decoded_whole(folder, repeat: int) -> float | None:
    """Seconds to read the folder with every JPEG decoded at its full size (the peer of the
    draft decode, same files, same run); None when that is over the pixel budget."""
    kept = own_data.DECODED_SIDE
    own_data.DECODED_SIDE = 0
    try:
        return timed(lambda: read_folder(folder), repeat)[0]
    except own_data.OwnDataError:
        return None
    finally:
        own_data.DECODED_SIDE = kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--side", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the server's own thread reads it, beside the training process
    print(Machine.detect(torch.device("cpu")).describe(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "pictures"
        size = write_folder(root, args.classes, args.per_class, args.side)
        count = args.classes * args.per_class
        print(f"folder: {count:,} JPEGs of {args.side}x{args.side * 3 // 4}, {size / 2**20:.1f} MB")
        listing_s, folder = timed(lambda: list_folder(root), args.repeat)
        read_s, own = timed(lambda: read_folder(folder), args.repeat)
        whole_s = decoded_whole(folder, args.repeat)
        first_s, key = timed(lambda: own_sets.lesson_dataset(root), 1)
        later_s, again = timed(lambda: own_sets.lesson_dataset(root), args.repeat)
        assert again == key
        held = own.train.images.numel() + own.test.images.numel()
        print(f"list the folder (counts, sizes; nothing opened): {listing_s * 1000:.0f} ms")
        print(f"read it (decode and prepare every picture):      {read_s:.1f} s ({count / read_s:,.0f} pictures/s)")
        if whole_s is None:
            print("decoded whole instead: over the dataset's pixel budget, refused")
        else:
            print(f"decoded whole instead (no JPEG draft):           {whole_s:.1f} s ({whole_s / read_s:.1f}x as long)")
        print(f"first page of the lesson (list, read, keep):      {first_s:.1f} s")
        print(f"every later page (list, then the kept dataset):  {later_s * 1000:.0f} ms")
        print(f"held in memory: {held / 2**20:.1f} MB ({len(own.train):,} to learn from, {len(own.test):,} held out)")


if __name__ == "__main__":
    main()
