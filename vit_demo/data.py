"""The bundled datasets, held in memory as uint8 tensors and augmented on whole batches.

Downloading goes through torchvision's own dataset classes (all three datasets), so a user
who is online gets the real files fetched for them; offline, the error names every missing
file and the folder it belongs in. MNIST and Fashion-MNIST are then read straight from their
IDX files, CIFAR-10 from its pickles (with an unpickler that only builds arrays).

Each split is decoded once per process and cached: the app trains many models without
re-reading 60,000 images each time.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import settings
from .forking import ForkSafeLock


@dataclass(frozen=True)
class DatasetSpec:
    key: str
    title: str
    class_names: tuple[str, ...]
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    folder: str  # torchvision's folder name under the data directory
    files: tuple[str, ...]  # what must be on disk, relative to `folder`
    # How a user's own picture is turned into what the model saw in training:
    # "digit" (MNIST's centre-of-mass recipe), "fashion" (Fashion-MNIST's trimmed and
    # centred silhouettes) or "natural" (resize and centre-crop a photo).
    style: str
    # Translation for greyscale digits/clothes; crop + horizontal flip for photos.
    augment_shift: int
    augment_flip: bool
    train_images: int  # the published sizes of the splits (the data is not read to count them)
    test_images: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def at(self, image_size: int | None = None, channels: int | None = None) -> DatasetSpec:
        """The dataset prepared at another `image_size` and number of `channels` (None: its own):
        its statistics follow the channels (grey repeated, colour weighed as PIL weighs it) and
        its shift augmentation the size."""
        size, channels = image_size or self.image_size, channels or self.channels
        if (size, channels) == (self.image_size, self.channels):
            return self
        mean, std = self.mean, self.std
        if channels == 3 and len(mean) == 1:
            mean, std = mean * 3, std * 3
        elif channels == 1 and len(mean) == 3:
            mean, std = (_weighed(mean),), (_weighed(std),)
        shift = max(1, round(self.augment_shift * size / self.image_size)) if self.augment_shift else 0
        return replace(self, image_size=size, channels=channels, mean=mean, std=std, augment_shift=shift)

    @property
    def native(self) -> bool:
        """The dataset as it is stored (not resized or recoloured)."""
        stored = DATASETS.get(self.key) or get_spec(self.key)
        return (stored.image_size, stored.channels) == (self.image_size, self.channels)


LUMINANCE = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's own RGB -> "L"
SOURCE_SHIFT = 4  # pixels a person's own 64x64 pictures are shifted by (scaled with image_size)

_MNIST_FILES = (
    "raw/train-images-idx3-ubyte",
    "raw/train-labels-idx1-ubyte",
    "raw/t10k-images-idx3-ubyte",
    "raw/t10k-labels-idx1-ubyte",
)

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        key="mnist",
        title="MNIST (handwritten digits)",
        class_names=tuple(str(d) for d in range(10)),
        channels=1,
        image_size=28,
        mean=(0.1307,),
        std=(0.3081,),
        folder="MNIST",
        files=_MNIST_FILES,
        style="digit",
        # 1 pixel, not 2: at 150k images 98.09% against 97.58% (benchmarks/RESULTS.md).
        augment_shift=1,
        augment_flip=False,
        train_images=60_000,
        test_images=10_000,
    ),
    "fashion_mnist": DatasetSpec(
        key="fashion_mnist",
        title="Fashion-MNIST (clothes)",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        channels=1,
        image_size=28,
        mean=(0.2860,),
        std=(0.3530,),
        folder="FashionMNIST",
        files=_MNIST_FILES,
        style="fashion",
        # No augmentation: in one-minute runs a 2-pixel shift cost 2.3 points and shift+flip
        # 2.8 (85.1% and 85.6% against 87.95%, benchmarks/RESULTS.md).
        augment_shift=0,
        augment_flip=False,
        train_images=60_000,
        test_images=10_000,
    ),
    "cifar10": DatasetSpec(
        key="cifar10",
        title="CIFAR-10 (small colour photos)",
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        channels=3,
        image_size=32,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        folder="cifar-10-batches-py",
        files=("batches.meta", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch"),
        style="natural",
        augment_shift=4,
        augment_flip=True,
        train_images=50_000,
        test_images=10_000,
    ),
}


# --------------------------------------------------------------------------- a person's own


OWN_PREFIX = "own-"
OWN_GONE = "these pictures are no longer on this server: add your own pictures again on the Build tab"
MAX_OWN_DATASETS = 16  # the newest kept in memory; a page whose set was let go is asked again


def register_own(
    key: str, title: str, class_names: tuple[str, ...], train: Split, test: Split, lesson: bool = False
) -> DatasetSpec:
    """Keep a person's own pictures (uint8 (N, 3, S, S), `own_data.py`) in this process under
    `key` (OWN_PREFIX + their digest), so a run names them as it names a bundled set. The
    lesson's dataset (one a server) is kept for good: the whole class uses it."""
    pictures = train.images.float() / 255.0
    spec = _own_spec(
        key,
        title,
        class_names,
        image_size=train.images.shape[-1],
        mean=pictures.mean(dim=(0, 2, 3)).tolist(),
        std=pictures.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist(),
        augment_shift=SOURCE_SHIFT,
        counts=(len(train), len(test)),
    )
    with _cache_lock:
        _own[key] = (spec, train, test)
        _own.move_to_end(key)
        if lesson:
            _lesson_own[:] = [key]
        pages = [k for k in _own if k not in _lesson_own]
        for old in pages[: max(0, len(pages) - MAX_OWN_DATASETS)]:
            del _own[old]
    return spec


def _own_spec(key, title, class_names, image_size, mean, std, augment_shift, counts) -> DatasetSpec:
    """A person's own pictures as a dataset: colour photos or drawings, never mirrored (drawn
    letters and digits read differently so)."""
    return DatasetSpec(
        key=key, title=title, class_names=tuple(class_names), channels=len(mean), image_size=image_size,
        mean=tuple(mean), std=tuple(std), folder="", files=(), style="natural", augment_shift=augment_shift,
        augment_flip=False, train_images=counts[0], test_images=counts[1],
    )  # fmt: skip


def _held(key: str) -> tuple[DatasetSpec, Split, Split] | None:
    with _cache_lock:
        return _own.get(key)


def own_pictures(key: str) -> tuple | None:
    """What `register_own` was given for `key` (None for a bundled dataset): a training
    process or a ZeroGPU worker registers it again on its side."""
    own = _held(key)
    if own is None:
        return None
    spec, train, test = own
    return key, spec.title, spec.class_names, train, test


def spec_of(info: dict) -> DatasetSpec:
    """The dataset a trained model's `info` (checkpoints.py) describes, at its size and channels.
    A person's own dataset that this server does not hold is described from the info alone:
    enough to show pictures to the model, not to train it."""
    key = str(info["dataset"])
    if key.startswith(OWN_PREFIX) and _held(key) is None:
        return _own_spec(
            key, str(info.get("title", "your pictures")), info["class_names"], int(info.get("image_size", 64)),
            info["mean"], info["std"], augment_shift=0, counts=(0, 0),
        )  # fmt: skip
    return get_spec(key).at(info.get("image_size"), info.get("channels"))


def _weighed(values: tuple[float, ...]) -> float:
    return sum(w * v for w, v in zip(LUMINANCE, values))


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not on disk and could not be downloaded."""


class DatasetCorruptError(RuntimeError):
    """The dataset's files are on disk but cannot be read (half-downloaded, truncated...)."""


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """A bundled dataset by its name, a person's own by its key (`register_own`); a spec (one
    prepared at another size, say) as it is."""
    if isinstance(name, DatasetSpec):
        return name
    if str(name).startswith(OWN_PREFIX):
        own = _held(name)
        if own is None:
            raise ValueError(f"{OWN_GONE} ({name})")
        return own[0]
    key = name.lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[key]


def default_data_dir() -> Path:
    """`VIT_DEMO_DATA` if set, else a per-user cache folder."""
    chosen = settings.read("VIT_DEMO_DATA")
    if chosen is not None:
        return chosen
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vit_demo" / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def downloads_allowed() -> bool:
    """Set VIT_DEMO_DOWNLOAD=0 to never touch the network (tests and CI do)."""
    return settings.read("VIT_DEMO_DOWNLOAD")


def display_pixels(pixels: torch.Tensor) -> np.ndarray:
    """uint8 (C, H, W) -> (H, W) grey or (H, W, 3) colour: the array PIL and matplotlib show. A
    copy: a view would read freed memory once the tensor's storage moves (into shared memory,
    when a job holding it is pickled for another process)."""
    array = pixels.permute(1, 2, 0).numpy()
    return (array[..., 0] if array.shape[-1] == 1 else array).copy()


def to_picture(pixels: torch.Tensor) -> Image.Image:
    """uint8 (C, H, W) -> a PIL image ("L" grey or "RGB")."""
    return Image.fromarray(display_pixels(pixels))


def missing_files(spec: DatasetSpec, root: Path) -> list[Path]:
    return [root / spec.folder / f for f in spec.files if not (root / spec.folder / f).is_file()]


def _missing_message(spec: DatasetSpec, root: Path, missing: list[Path], reason: str) -> str:
    listed = "\n".join(f"  - {p}" for p in missing)
    return (
        f"{spec.title} is not in {root} ({reason}).\n"
        f"Missing files:\n{listed}\n"
        f"Put them in {root / spec.folder} (torchvision's layout), or point the data folder at a copy "
        f"that has them: `export VIT_DEMO_DATA=/path/to/data` or `--data-dir /path/to/data`."
    )


def _download(spec: DatasetSpec, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[spec.key]
    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        cls(root=str(root), train=train, download=True)


@dataclass
class Split:
    """One split of a dataset: images as uint8 (N, C, H, W), labels as int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, limit: int | None) -> Split:
        if limit is None or limit >= len(self):
            return self
        return Split(self.images[:limit], self.labels[:limit])


def _read_idx(path: Path, dimensions: int) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format: two zero bytes, type 0x08, the number of
    dimensions, each dimension as a big-endian uint32, then the values); a ValueError saying
    what is wrong with it, which `_read_split` turns into a DatasetCorruptError. Read directly: going
    through torchvision's dataset classes imports torchvision, ~2 s of CPU that the first
    training of a fresh app paid out of its time budget."""
    raw = path.read_bytes()
    header = 4 + 4 * dimensions
    if len(raw) < header or raw[:4] != bytes((0, 0, 0x08, dimensions)):
        raise ValueError(f"{path.name} is not an IDX file of {dimensions}-dimensional bytes")
    shape = struct.unpack(f">{dimensions}I", raw[4:header])
    if len(raw) - header != math.prod(shape):
        raise ValueError(
            f"{path.name} should hold {math.prod(shape):,} values after its header, holds {len(raw) - header:,}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _read_mnist_like(spec: DatasetSpec, root: Path, train: bool) -> Split:
    prefix = "train" if train else "t10k"
    raw = root / spec.folder / "raw"
    images = _read_idx(raw / f"{prefix}-images-idx3-ubyte", 3)
    labels = _read_idx(raw / f"{prefix}-labels-idx1-ubyte", 1)
    if len(images) != len(labels):
        raise ValueError(f"{len(images):,} images but {len(labels):,} labels")
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


class _CifarUnpickler(pickle.Unpickler):
    """CIFAR-10's python files are pickles. Only the few harmless globals a numpy array
    needs are allowed, so a doctored file cannot run code while it is read."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _load_cifar_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        batch = _CifarUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _read_cifar10(spec: DatasetSpec, root: Path, train: bool) -> Split:
    folder = root / spec.folder
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    images, labels = [], []
    for name in names:
        batch = _load_cifar_batch(folder / name)
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch["labels"]) != len(data):
            raise DatasetCorruptError(f"{folder / name} does not hold 32x32 RGB images with one label each")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(batch["labels"], dtype=torch.long))
    return Split(torch.cat(images), torch.cat(labels))


_cache: dict[tuple[str, str, bool], Split] = {}
_own: collections.OrderedDict[str, tuple[DatasetSpec, Split, Split]] = collections.OrderedDict()
_lesson_own: list[str] = []  # the key of the lesson's dataset, never let go
# One prepared variant per split at a time: MNIST at 64x64 in colour alone is 0.7 GB.
_variants: dict[tuple[str, str, bool], tuple[tuple[int, int], Split]] = {}
_cache_lock = ForkSafeLock()  # a ZeroGPU worker is forked from the server: see forking.py


def load_split(
    name: str | DatasetSpec,
    train: bool,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool | None = None,
) -> Split:
    """One split as in-memory tensors; decoded once per process, then served from memory.

    A spec at another size or number of channels (`DatasetSpec.at`) gets the split prepared
    so, as `pictures.resize_split` prepares it. `limit` keeps the first `limit` images (tests
    and quick demos). `download` defaults to `downloads_allowed()`.
    """
    spec = get_spec(name)
    if spec.key.startswith(OWN_PREFIX):
        return _own_split(spec, train).subset(limit)
    stored = DATASETS[spec.key]
    root = resolve_data_dir(data_dir)
    key = (spec.key, str(root.resolve()), train)
    with _cache_lock:
        split = _cache.get(key)
        if split is None:
            split = _read_split(stored, root, train, downloads_allowed() if download is None else download)
            _cache[key] = split
        if not spec.native:
            split = _variant(key, split, spec.image_size, spec.channels)
    return split.subset(limit)


def _own_split(spec: DatasetSpec, train: bool) -> Split:
    """A person's pictures at the spec's size: prepared afresh each time (they are few)."""
    from .pictures import resize_split

    own = _held(spec.key)
    if own is None:
        raise ValueError(OWN_GONE)
    split = own[1] if train else own[2]
    if spec.native:
        return split
    return Split(resize_split(split.images, spec.image_size, spec.channels), split.labels)


def _variant(key: tuple, split: Split, size: int, channels: int) -> Split:
    from .pictures import resize_split  # pictures reads the datasets' specs: imported when needed

    made = _variants.get(key)
    if made is None or made[0] != (size, channels):
        made = (size, channels), Split(resize_split(split.images, size, channels), split.labels)
        _variants[key] = made
    return made[1]


def _read_split(spec: DatasetSpec, root: Path, train: bool, download: bool) -> Split:
    missing = missing_files(spec, root)
    if missing:
        if not download:
            raise DatasetNotFoundError(_missing_message(spec, root, missing, "downloads are switched off"))
        try:
            _download(spec, root)
        except Exception as error:  # no network, a read-only folder, a mirror down...
            raise DatasetNotFoundError(
                _missing_message(spec, root, missing, f"the download failed: {error}")
            ) from error
    try:
        split = _read_cifar10(spec, root, train) if spec.key == "cifar10" else _read_mnist_like(spec, root, train)
    except DatasetCorruptError:
        raise
    except Exception as error:
        raise DatasetCorruptError(
            f"{spec.title} in {root / spec.folder} could not be read ({error}). A file may be half-downloaded "
            f"or damaged: delete the folder's files and download them again."
        ) from error
    if split.images.shape[1:] != (spec.channels, spec.image_size, spec.image_size):
        raise DatasetCorruptError(
            f"{spec.title} in {root / spec.folder} holds images of shape {tuple(split.images.shape[1:])}, "
            f"expected {(spec.channels, spec.image_size, spec.image_size)}"
        )
    if len(split) and (split.labels.min() < 0 or split.labels.max() >= spec.num_classes):
        raise DatasetCorruptError(f"{spec.title} in {root / spec.folder} has labels outside 0..{spec.num_classes - 1}")
    return split


def normalize(images: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] then standardised per channel."""
    mean = torch.tensor(spec.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(images: torch.Tensor, spec: DatasetSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random translation by up to `augment_shift` pixels (zero padding, as a crop of a
    padded image) and, where it makes sense, a horizontal flip — on the whole batch at once."""
    b, _, h, w = images.shape
    device = images.device
    # Random numbers are drawn where the generator lives: a CPU generator gives the same
    # run on any CPU; the trainer gives a GPU run a GPU generator, so no step waits on a copy.
    drawn_on = generator.device if generator is not None else device
    shift = spec.augment_shift
    if shift:
        padded = F.pad(images, (shift, shift, shift, shift))
        dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator, device=drawn_on).to(device)
        dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator, device=drawn_on).to(device)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, :, None]  # (B, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, :]  # (B, 1, W)
        batch = torch.arange(b, device=device)[:, None, None]
        images = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if spec.augment_flip:
        flip = (torch.rand(b, generator=generator, device=drawn_on) < 0.5).to(device)
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images.contiguous()
