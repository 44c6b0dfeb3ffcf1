import re

import pytest

from vit_demo import checkpoints, images
from vit_demo.settings import SettingError, read


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("VIT_DEMO_MAX_UPLOAD_MB", "lots", "VIT_DEMO_MAX_UPLOAD_MB must be a number greater than 0, got 'lots'"),
        ("VIT_DEMO_MAX_TRAININGS", "1.5", "VIT_DEMO_MAX_TRAININGS must be a whole number greater than 0, got '1.5'"),
        ("VIT_DEMO_MAX_CHECKPOINT_MB", "-1", "VIT_DEMO_MAX_CHECKPOINT_MB must be greater than 0, got '-1'"),
        ("VIT_DEMO_DOWNLOAD", "maybe", "VIT_DEMO_DOWNLOAD must be 1 or 0"),
    ],
)
def test_a_bad_setting_is_named_with_what_it_accepts(monkeypatch, name, raw, message):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingError, match=re.escape(message)):
        read(name)


def test_every_library_limit_reads_its_declared_variable(monkeypatch):
    monkeypatch.setenv("VIT_DEMO_MAX_UPLOAD_MB", "2")
    monkeypatch.setenv("VIT_DEMO_MAX_CHECKPOINT_MB", "0.5")
    monkeypatch.setenv("VIT_DEMO_MAX_IMAGE_MEGAPIXELS", "3")
    assert (images.max_upload_bytes(), checkpoints.max_checkpoint_bytes(), images.max_image_pixels()) == (
        2 * 2**20,
        2**19,
        3_000_000,
    )
    monkeypatch.setenv("VIT_DEMO_MAX_UPLOAD_MB", "twenty")
    with pytest.raises(SettingError, match="VIT_DEMO_MAX_UPLOAD_MB"):
        images.max_upload_bytes()
