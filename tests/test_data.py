import os
import pickle
import shutil
import stat

import pytest
import torch

from tools.synthetic_cifar import write_cifar10
from vit_demo import data
from vit_demo.data import DATASETS, DatasetCorruptError, DatasetNotFoundError, load_split


def test_cifar10_reads_the_real_format(tmp_path):
    written = write_cifar10(tmp_path)
    train = load_split("cifar10", train=True, data_dir=tmp_path)
    test = load_split("cifar10", train=False, data_dir=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert test.images.shape == (4, 3, 32, 32)
    pixels, labels = written["data_batch_2"]
    # Image 0 of batch 2 is the 5th training image; its first 1024 bytes are the red plane.
    assert train.images[4, 0].flatten().tolist() == pixels[0, :1024].tolist()
    assert train.images[4, 2, 31, 31].item() == pixels[0, 3071]
    assert train.labels[4:8].tolist() == labels
    assert test.labels.tolist() == written["test_batch"][1]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_doctored_cifar_file_cannot_run_code(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": _Payload(marker), b"labels": [0]}, f, protocol=2)
    with pytest.raises(DatasetCorruptError, match="refusing to load"):
        load_split("cifar10", train=False, data_dir=tmp_path)
    assert not marker.exists()


def test_missing_dataset_offline_names_files_folder_and_the_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_split("fashion_mnist", train=True, data_dir=tmp_path, download=False)
    message = str(raised.value)
    assert f"{tmp_path / 'FashionMNIST' / 'raw' / 'train-images-idx3-ubyte'}" in message
    assert f"{tmp_path / 'FashionMNIST' / 'raw' / 't10k-labels-idx1-ubyte'}" in message
    assert "VIT_DEMO_DATA" in message and "--data-dir" in message


def test_a_failed_download_is_reported_with_the_missing_files(tmp_path, monkeypatch):
    def no_network(spec, root):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(data, "_download", no_network)
    with pytest.raises(DatasetNotFoundError, match="the download failed: Temporary failure in name resolution"):
        load_split("mnist", train=False, data_dir=tmp_path, download=True)


def test_the_data_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIT_DEMO_DATA", str(tmp_path))
    assert data.default_data_dir() == tmp_path
    monkeypatch.delenv("VIT_DEMO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.default_data_dir() == tmp_path / "cache" / "vit_demo" / "data"


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="choose one of mnist, fashion_mnist, cifar10"):
        data.get_spec("imagenet")


def test_real_mnist_is_the_published_set(data_dir):
    train = load_split("mnist", train=True, data_dir=data_dir)
    test = load_split("mnist", train=False, data_dir=data_dir)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert len(test) == 10000
    assert torch.bincount(train.labels).tolist()[:3] == [5923, 6742, 5958]
    assert abs(train.images.float().mean().item() / 255 - 0.1307) < 1e-3


def test_each_split_is_read_once_per_process(data_dir):
    first = load_split("fashion_mnist", train=False, data_dir=data_dir)
    again = load_split("fashion_mnist", train=False, data_dir=data_dir, limit=100)
    assert again.images.data_ptr() == first.images.data_ptr()
    assert len(again) == 100


def test_a_read_only_data_folder_works(data_dir, tmp_path):
    root = tmp_path / "ro"
    shutil.copytree(data_dir / "MNIST", root / "MNIST")
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        path.chmod(stat.S_IRUSR | stat.S_IXUSR if path.is_dir() else stat.S_IRUSR)
    try:
        assert len(load_split("mnist", train=False, data_dir=root)) == 10000
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(stat.S_IRWXU)


def test_a_truncated_dataset_file_is_reported_not_crashed_on(data_dir, tmp_path):
    shutil.copytree(data_dir / "MNIST", tmp_path / "MNIST")
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(DatasetCorruptError, match="half-downloaded or damaged"):
        load_split("mnist", train=False, data_dir=tmp_path)


def test_normalize_matches_a_hand_computation():
    spec = DATASETS["mnist"]
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1)
    expected = torch.tensor([(0 - 0.1307) / 0.3081, (1 - 0.1307) / 0.3081]).view(2, 1, 1, 1)
    torch.testing.assert_close(data.normalize(images, spec), expected)


def test_augment_shifts_each_image_by_at_most_the_allowed_pixels():
    spec = DATASETS["mnist"]
    images = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 14, 14] = 255
    moved = data.augment(images, spec, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and moved.dtype == torch.uint8
    positions = moved[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 28, positions % 28
    assert moved.flatten(1).amax(1).eq(255).all()  # the dot never falls off the image
    shift = spec.augment_shift
    assert shift >= 1
    assert (rows - 14).abs().max() <= shift and (cols - 14).abs().max() <= shift
    assert len(set(zip(rows.tolist(), cols.tolist()))) == (2 * shift + 1) ** 2  # and it reaches every offset


def test_augment_flips_photos_left_to_right():
    spec = DATASETS["cifar10"]
    images = torch.zeros(200, 3, 32, 32, dtype=torch.uint8)
    images[:, :, 16, 0:4] = 255  # a bar on the left edge
    out = data.augment(images, spec, torch.Generator().manual_seed(1))
    right_side = out[:, 0, :, 16:].flatten(1).amax(1) == 255
    assert 0.3 < right_side.float().mean() < 0.7
