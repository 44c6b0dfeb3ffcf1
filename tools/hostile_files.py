"""Hostile files, as a student could make them from a run the app saved: for the hostile-input
tests (tests/test_hostile_uploads.py, tests/test_run_record.py) and benchmarks/hostile_inputs.py.
Each takes a valid run's zip (the Train tab's download) or writes its own, and returns the path
of a file that must be refused with a sentence."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path


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
