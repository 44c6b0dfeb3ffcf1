"""Opening a user's image file without trusting it.

Uploads come from anyone in a classroom: empty files, text renamed to .png, truncated
downloads, animated GIFs, 16-bit scans, phone photos lying on their side, and small files
that claim to be 30000x30000 pixels (decompression bombs). `open_image` reads only the
header first, refuses what is too big before a single pixel is decoded, and returns an
upright, fully decoded, single-frame PIL image — or raises `ImageError` with a sentence
that says what was wrong and what to do.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from . import settings
from .summaries import format_bytes


class ImageError(ValueError):
    """An upload that cannot be used as an image, with the reason in plain words."""


def max_upload_bytes() -> int:
    return settings.megabytes("VIT_DEMO_MAX_UPLOAD_MB")


def max_image_pixels() -> int:
    return int(settings.read("VIT_DEMO_MAX_IMAGE_MEGAPIXELS") * 1_000_000)


MIN_SIDE = 4  # below this there is nothing for a model to look at


def open_image(source: str | os.PathLike | bytes, name: str | None = None, least_side: int = 0) -> Image.Image:
    """A path or the file's bytes -> a decoded, upright PIL image (first frame of an animation).
    `least_side`: the smallest side the caller needs; a JPEG is then decoded at 1/2, 1/4 or 1/8
    of its size while both sides stay at least that (PIL's draft scales the DCT), so a phone
    photo for a 64x64 dataset costs a 64th of its pixels."""
    raw, label = _read_bytes(source, name)
    if len(raw) > max_upload_bytes():
        raise ImageError(_too_many_bytes(label, len(raw)))
    if not raw:
        raise ImageError(f"{label} is empty (0 bytes): choose an image file such as a PNG or JPEG")

    with warnings.catch_warnings():
        # PIL warns (and past 2x its limit, raises) about bombs itself; our own check is stricter.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(raw))
        except Image.DecompressionBombError as error:
            # PIL refuses past twice its own limit, before we see the header; it names the count.
            claimed = int(re.search(r"\((\d+) pixels\)", str(error)).group(1))
            size = _header_size(raw)
            described = f"{size[0]}x{size[1]} pixels" if size else "an image"
            raise ImageError(_too_many_pixels(label, described, claimed)) from error
        except UnidentifiedImageError as error:
            raise ImageError(
                f"{label} is not an image PIL can read (it may be another kind of file renamed): "
                f"upload a PNG, JPEG, GIF, BMP or WebP"
            ) from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:  # a header cut off mid-chunk
            raise ImageError(_undecodable(label, error)) from error

        width, height = image.size  # from the header: nothing decoded yet
        if width * height > max_image_pixels():
            raise ImageError(_too_many_pixels(label, f"{width}x{height} pixels", width * height))
        if min(width, height) < MIN_SIDE:
            raise ImageError(
                f"{label} is only {width}x{height} pixels: upload an image at least {MIN_SIDE}x{MIN_SIDE} "
                f"(a 28x28 digit or larger works best)"
            )
        try:
            image.seek(0)  # an animated GIF/WebP/APNG: the first frame
            if least_side:
                image.draft(None, (least_side, least_side))
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageError(_undecodable(label, error)) from error

    upright = ImageOps.exif_transpose(image)
    upright.load()
    if upright is image:
        # Detach from the animation/file object so later frames are never touched.
        upright = image.copy()
    return upright


def _read_bytes(source: str | os.PathLike | bytes, name: str | None) -> tuple[bytes, str]:
    """The file's bytes and what to call it; a file over the upload limit is refused unread."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), name or "the upload"
    path = Path(source)
    label = name or path.name
    if not path.is_file():
        raise ImageError(f"{label} was not found")
    size = path.stat().st_size
    if size > max_upload_bytes():
        raise ImageError(_too_many_bytes(label, size))
    return path.read_bytes(), label


def _header_size(raw: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone, for a file PIL's own bomb check refused
    (that check runs inside `Image.open`, after the header is read, and names only the
    pixel count). The format plugins parse the header without decoding anything."""
    Image.init()
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        try:
            if accept is None or accept(raw[:16]):
                with factory(io.BytesIO(raw), None) as image:
                    return image.size
        except Exception:  # noqa: BLE001 - not this format, or a header it cannot read: try the next
            continue
    return None


def _undecodable(label: str, error: Exception) -> str:
    return (
        f"{label} could not be decoded ({error}): the file looks truncated or damaged. "
        f"Save it again or choose another image"
    )


def _too_many_bytes(label: str, size: int) -> str:
    return (
        f"{label} is {format_bytes(size)}, over the {format_bytes(max_upload_bytes())} upload limit: "
        f"save a smaller copy (the model only sees a 28x28 or 32x32 version anyway)"
    )


def _too_many_pixels(label: str, size: str, pixels: int) -> str:
    return (
        f"{label} is {size} ({pixels / 1e6:,.0f} megapixels), over the {max_image_pixels() / 1e6:.0f}-megapixel "
        f"limit: decoding it would take too much memory. Resize it below that and upload it again"
    )
