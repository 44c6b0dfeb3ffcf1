"""Hostile files, as a student could make them from a run the app saved: for the hostile-input
tests (tests/test_hostile_uploads.py, tests/test_run_record.py) and benchmarks/hostile_inputs.py.
Each takes a valid run's zip (the Train tab's download) or writes its own, and returns the path
of a file that must be refused with a sentence."""

from __future__ import annotations

import io
import json
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image, ImageDraw


def rewritten(source: Path, target: Path, name: str, data: bytes) -> Path:
    """`source` (a zip) with its member called `name` replaced by `data`."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            copy.writestr(item, data if item.filename.endswith("/" + name) else original.read(item))
    return target


def edited_json(source: Path, target: Path, name: str, change) -> Path:
    """`source` with the JSON member `name` passed through `change(values)` (which edits in place)."""
    with zipfile.ZipFile(source) as archive:
        member = next(m for m in archive.namelist() if m.endswith("/" + name))
        values = json.loads(archive.read(member))
    change(values)
    return rewritten(source, target, name, json.dumps(values).encode())


def lying_zip(path: Path, real_bytes: int, declared: int, member: str = "model.safetensors") -> Path:
    """A zip whose `member` inflates to `real_bytes` while its headers declare `declared`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("m/config.json", "{}")
        archive.writestr(f"m/{member}", b"\x00" * real_bytes)
    data = bytearray(path.read_bytes())
    # (signature, where the name's length is, where the name starts, where the size is) in a
    # local file header and a central directory header
    for signature, length_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, 22), (b"PK\x01\x02", 28, 46, 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", data, start + length_at)[0]
            if bytes(data[start + name_at : start + name_at + length]).endswith(member.encode()):
                struct.pack_into("<I", data, start + size_at, declared)
            start += 4
    path.write_bytes(bytes(data))
    return path


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header announces width x height pixels, with a few bytes of data: a
    decompression bomb's shape (a real 30000x30000 one inflates to 900 MB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# What a student can do to a saved run's run.json, each with the words of its refusal.
RUN_EDITS = {
    "a 1000x1000 confusion matrix": (lambda v: v.update(confusion=[[1] * 1000] * 1000), "2.9 MB unpacked, over"),
    "a 40x40 confusion matrix": (lambda v: v.update(confusion=[[1] * 40] * 40), "holds 40 items, more than the 10"),
    "100,000 curve points": (lambda v: v.update(loss_rows=[[0, 1.0, "train loss"]] * 100_000), "MB unpacked, over"),
    "one curve point too many": (lambda v: v.update(loss_rows=[[0, 1.0, "train loss"]] * 5_000), "holds 5,000 items"),
    "negative steps": (lambda v: v["result"].update(steps=-567), "result.steps must be a whole number"),
    "an accuracy of NaN": (lambda v: v["result"].update(test_accuracy=float("nan")), "got nan"),
    "text where a number goes": (lambda v: v["result"].update(epochs="two"), "got 'two'"),
    "a missing key": (lambda v: v.pop("result"), "run.json has no result"),
}


# ================================================================== a person's own dataset (vit_demo/own_data.py)

DATASET_CLASSES = ("circles", "squares", "triangles")


def shape_picture(kind: str, index: int, size: int = 32, format: str = "PNG") -> bytes:
    """A picture of one of DATASET_CLASSES's shapes, its colours and place varying with `index`."""
    hue = (index * 47) % 256
    image = Image.new("RGB", (size + index % 3 * 4, size), (255 - hue, 230, hue))
    draw = ImageDraw.Draw(image)
    box = (4 + index % 4, 4, size - 4, size - 4 - index % 3)
    ink = (hue, 40, 255 - hue)
    if kind == "circles":
        draw.ellipse(box, fill=ink)
    elif kind == "squares":
        draw.rectangle(box, fill=ink)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=ink)
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def _zipped(path: Path, members: dict[str, bytes | tuple[zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(*(content if isinstance(content, tuple) else (name, content)))
    return path


def dataset_zip(folder: Path, per_class: int = 8, name: str = "shapes.zip", top: str = "shapes") -> Path:
    """A valid dataset: `top`/<class>/<n>.png|jpg, DATASET_CLASSES x `per_class` distinct pictures."""
    members = {}
    for kind in DATASET_CLASSES:
        for index in range(per_class):
            extension = "jpg" if index % 3 == 2 else "png"
            picture = shape_picture(kind, index, format="JPEG" if extension == "jpg" else "PNG")
            members[f"{top}/{kind}/{index}.{extension}"] = picture
    return _zipped(Path(folder) / name, members)


def _patched(path: Path, member: str, local_at: int, central_at: int, change) -> Path:
    """`path` with a 4-byte field of `member`'s local and central headers passed through `change`."""
    data = bytearray(path.read_bytes())
    # (signature, where the name's length is, where the name starts, where the field is)
    headers = ((b"PK\x03\x04", 26, 30, local_at), (b"PK\x01\x02", 28, 46, central_at))
    for signature, length_at, name_at, field_at in headers:
        start = 0
        while (start := data.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", data, start + length_at)[0]
            if bytes(data[start + name_at : start + name_at + length]) == member.encode():
                value = struct.unpack_from("<I", data, start + field_at)[0]
                struct.pack_into("<I", data, start + field_at, change(value))
            start += 4
    path.write_bytes(bytes(data))
    return path


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16  # as `zip --symlinks` stores one
    return info, target.encode()


def hostile_dataset_zips(folder: Path) -> dict[str, Path]:
    """Every way a dataset zip can be hostile or unusable, each written into `folder`, by case."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = {f"pets/{kind}/{i}.png": shape_picture(kind, i, 16) for kind in DATASET_CLASSES for i in range(3)}
    tiny = io.BytesIO()
    Image.new("RGB", (2, 2)).save(tiny, format="PNG")
    zeros = b"\x00" * (64 * 2**20)  # deflates to ~64 KB
    big = b"".join(bytes([i % 251, 7]) + b"\x00" * 1022 for i in range(24 * 2**10))  # 24 MB, packs ~200:1
    cases = {
        "one class": {f"cats/{i}.png": shape_picture("circles", i) for i in range(4)},
        "21 classes": {f"c{c}/{i}.png": shape_picture("squares", i, 16) for c in range(21) for i in range(2)},
        "a lonely class": {**base, "pets/frogs/only.png": shape_picture("circles", 9)},
        "a long class name": {**base, f"pets/{'x' * 41}/a.png": b"", f"pets/{'x' * 41}/b.png": b""},
        "a picture outside any class": {**base, "pets/stray.png": shape_picture("circles", 9)},
        "a folder inside a class": {**base, "pets/circles/old/a.png": shape_picture("circles", 9)},
        "a path with ../": {**base, "../evil.png": shape_picture("circles", 9)},
        "an absolute path": {**base, "/etc/evil.png": shape_picture("circles", 9)},
        "a drive letter": {**base, "C:\\evil.png": shape_picture("circles", 9)},
        "backslashes climbing": {**base, "pets\\..\\..\\evil.png": shape_picture("circles", 9)},
        "a symbolic link": {**base, "link": _symlink("pets/circles/link.png", "/etc/passwd")},
        "text renamed .png": {**base, "pets/circles/notes.png": b"my notes, not pixels\n" * 20},
        "a cut-off picture": {**base, "pets/circles/cut.png": shape_picture("circles", 9, 64)[:200]},
        "a 2x2 picture": {**base, "pets/circles/dot.png": tiny.getvalue()},
        "a decompression bomb picture": {**base, "pets/circles/huge.png": png_claiming_size(30000, 30000)},
        "a zip bomb": {**base, "pets/circles/bomb.png": zeros},
        "a member too big to be a picture": {**base, "pets/circles/big.bmp": big},
        "an empty zip": {},
    }
    found = {
        case: _zipped(folder / f"{re.sub(r'[^a-z0-9]+', '-', case).strip('-')}.zip", members)
        for case, members in cases.items()
    }
    with zipfile.ZipFile(_zipped(folder / "bzip2.zip", base), "a", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("pets/circles/bomb.png", zeros)  # packs a million times smaller
    # and says it holds 100 bytes: zipfile would inflate all 64 MB in one call
    found["bzip2 compression"] = _patched(folder / "bzip2.zip", "pets/circles/bomb.png", 22, 24, lambda _: 100)
    found["a member lying about its size"] = _patched(
        _zipped(folder / "liar.zip", {**base, "pets/circles/liar.png": zeros}), "pets/circles/liar.png", 22, 24,
        lambda _: 100,
    )  # fmt: skip
    found["an encrypted picture"] = _patched(
        _zipped(folder / "secret.zip", {**base, "pets/circles/secret.png": shape_picture("circles", 9)}),
        "pets/circles/secret.png", 6, 8, lambda value: value | 0x1,
    )  # fmt: skip
    (folder / "notes.zip").write_text("these are my notes, not a zip\n")
    found["not a zip"] = folder / "notes.zip"
    found["a cut-off zip"] = folder / "cut.zip"
    found["a cut-off zip"].write_bytes(dataset_zip(folder, name="whole.zip").read_bytes()[:3000])
    (folder / "whole.zip").unlink()
    found["an empty file"] = folder / "nothing.zip"
    found["an empty file"].write_bytes(b"")
    return found
