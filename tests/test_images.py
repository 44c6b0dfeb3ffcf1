import numpy as np
import pytest
from PIL import Image

from tools.hostile_files import png_claiming_size
from vit_demo.images import ImageError, open_image


def save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def noise(size=(64, 64), mode="RGB"):
    rng = np.random.default_rng(0)
    channels = {"RGB": 3, "L": 1}[mode]
    array = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze(-1) if channels == 1 else array, mode)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.png is empty \(0 bytes\)"):
        open_image(path)


def test_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(ImageError, match="notes.png is not an image PIL can read .* renamed"):
        open_image(path)


@pytest.mark.parametrize("fmt, name", [("PNG", "cut.png"), ("JPEG", "cut.jpg")])
def test_truncated_files(tmp_path, fmt, name):
    whole = save(tmp_path, "whole", noise((128, 128)), format=fmt)
    path = tmp_path / name
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match=f"{name} could not be decoded .* truncated or damaged"):
        open_image(path)


def test_one_pixel_image(tmp_path):
    path = save(tmp_path, "dot.png", Image.new("L", (1, 1), 255))
    with pytest.raises(ImageError, match=r"dot.png is only 1x1 pixels: upload an image at least 4x4"):
        open_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(30000, 30000))
    assert path.stat().st_size < 200
    with pytest.raises(
        ImageError, match=r"bomb.png is (30000x30000 pixels|an image) \(900 megapixels\), over the 40-megapixel limit"
    ):
        open_image(path)


def test_oversized_upload(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_UPLOAD_MB", "0.001")
    path = save(tmp_path, "big.png", noise((64, 64)))
    with pytest.raises(ImageError, match=r"big.png is \d+ KB, over the 1 KB upload limit"):
        open_image(path)


def test_sixteen_bit_png_keeps_its_values(tmp_path):
    array = np.full((30, 30), 40000, dtype=np.uint16)
    path = save(tmp_path, "deep.png", Image.fromarray(array))
    image = open_image(path)
    assert image.mode in ("I;16", "I") and image.getpixel((0, 0)) == 40000


def test_cmyk_jpeg(tmp_path):
    path = save(tmp_path, "print.jpg", Image.new("CMYK", (40, 40), (0, 0, 0, 255)), format="JPEG")
    assert open_image(path).mode == "CMYK"


def test_palette_and_animated_gif_give_the_first_frame(tmp_path):
    frames = [Image.new("P", (20, 20), colour) for colour in (3, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = open_image(path)
    assert image.size == (20, 20)
    assert image.getpixel((0, 0)) == open_image(save(tmp_path, "first.gif", frames[0])).getpixel((0, 0))
    assert getattr(image, "n_frames", 1) == 1


def test_rgba_with_transparency(tmp_path):
    image = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    image.putpixel((5, 5), (0, 0, 0, 255))
    assert open_image(save(tmp_path, "clear.png", image)).mode == "RGBA"


def test_exif_rotated_photo_is_turned_upright(tmp_path):
    landscape = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save(tmp_path, "phone.jpg", landscape, format="JPEG", exif=exif)
    assert open_image(path).size == (20, 40)


def test_a_very_wide_image(tmp_path):
    assert open_image(save(tmp_path, "wide.png", Image.new("L", (4000, 100), 0))).size == (4000, 100)


def test_bytes_are_accepted_too(tmp_path):
    raw = save(tmp_path, "ok.png", noise((32, 32), "L")).read_bytes()
    assert open_image(raw, name="drawing.png").size == (32, 32)
    with pytest.raises(ImageError, match="drawing.png is empty"):
        open_image(b"", name="drawing.png")


def test_an_image_just_over_our_limit_is_refused_from_its_header(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_IMAGE_MEGAPIXELS", "1")
    path = tmp_path / "large.png"
    path.write_bytes(png_claiming_size(2000, 1000))
    with pytest.raises(ImageError, match=r"large.png is 2000x1000 pixels \(2 megapixels\), over the 1-megapixel limit"):
        open_image(path)


def test_a_png_cut_off_inside_its_header(tmp_path):
    whole = save(tmp_path, "whole.png", noise((32, 32)))
    path = tmp_path / "stub.png"
    path.write_bytes(whole.read_bytes()[:20])  # inside the IHDR chunk
    with pytest.raises(ImageError, match="stub.png could not be decoded .* truncated or damaged"):
        open_image(path)
