"""Saving and loading trained models safely.

A checkpoint is a folder in the Hugging Face layout, so it can be pushed to the Hub as is:

    config.json        every ViT constructor argument, plus what the app needs to use the
                       model: dataset, class_names, per-channel mean/std, test_accuracy,
                       a training summary
    model.safetensors  the weights (a plain tensor format: loading it cannot run code)
    README.md          a model card

`load` also takes that folder zipped (what the app's download button gives), and a
`.pt`/`.pth` file holding a plain dict `{"config", "state_dict", "info"}`, read with
`torch.load(weights_only=True)`: a pickle that tries to build any other object is refused
before anything in it runs.

Writes are atomic (a temporary folder, then a rename): a reader never sees half a checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import MISSING, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes

from . import settings, validation
from .data import OWN_PREFIX, get_spec, spec_of
from .model import ViT, ViTConfig, estimated_training_memory_bytes
from .summaries import format_bytes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_FIELDS = tuple(f.name for f in fields(ViTConfig))
# The fields a config must name: those ViTConfig has no default for.
REQUIRED_MODEL_FIELDS = tuple(f.name for f in fields(ViTConfig) if f.default is MISSING)
REQUIRED_INFO = ("dataset", "class_names", "mean", "std")
# The most a small member of a checkpoint's zip may unpack to: far above what the app writes
# (a config.json is a few KB), far below what would cost the server.
MEMBER_LIMITS = {CONFIG_NAME: 1 * 2**20}
CHUNK = 2**20  # bytes inflated per read


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason in words a user can act on."""


def max_checkpoint_bytes() -> int:
    return settings.megabytes("VIT_DEMO_MAX_CHECKPOINT_MB")


def default_info(dataset) -> dict:
    """`dataset`: a name, or a spec at its image_size and channels (its statistics are those)."""
    spec = get_spec(dataset)
    return {
        "dataset": spec.key,
        "class_names": list(spec.class_names),
        "mean": list(spec.mean),
        "std": list(spec.std),
        "test_accuracy": None,
        **({"title": spec.title} if spec.key.startswith(OWN_PREFIX) else {}),
    }


def save(model: ViT, path: str | os.PathLike, info: dict | None = None) -> Path:
    """Write `model` (and `info`) as a checkpoint folder at `path`, replacing any old one atomically.

    `info` needs at least the dataset: the class names and normalisation it implies are
    filled in where `info` leaves them out. What `load` would refuse is refused here, with
    the same message, before anything is written.
    """
    path = Path(path)
    info = dict(info or {})
    clashing = sorted(set(info) & set(MODEL_FIELDS) - {"image_size", "channels"})
    if clashing:
        raise ValueError(f"info may not override model settings: {', '.join(clashing)}")
    if "dataset" in info:
        info = {**default_info(_dataset_spec(info).at(model.config.image_size, model.config.channels)), **info}
    _require(info, REQUIRED_INFO)
    _check_info({**info}, model.config)
    config = {**info, **model.config.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        (staging / "README.md").write_text(_model_card(model, info), encoding="utf-8")
        model.save_pretrained(staging, config=config)
        _replace_folder(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def _model_card(model: ViT, info: dict) -> str:
    """A short card in the Hugging Face layout (front matter, then prose)."""
    cfg = model.config
    accuracy = info.get("test_accuracy")
    score = f"{accuracy:.2%}" if isinstance(accuracy, (int, float)) else "not measured"
    dataset = info.get("dataset", "unknown")
    command = (info.get("training") or {}).get("command")
    trained = f"\nTrained with `{command}`.\n" if command else ""
    return (
        "---\nlibrary_name: vit_demo\nlicense: mit\npipeline_tag: image-classification\n"
        "tags:\n- vision-transformer\n- vit-playground\n---\n\n"
        f"# ViT Playground model: {dataset}\n\n"
        f"A Vision Transformer (Dosovitskiy et al., 2020, arXiv:2010.11929) trained in ViT Playground.\n\n"
        f"- image {cfg.image_size}x{cfg.image_size}x{cfg.channels}, patch {cfg.patch_size} "
        f"({cfg.num_patches} patches + CLS), dim {cfg.dim}, depth {cfg.depth}, heads {cfg.heads}, "
        f"mlp_dim {cfg.mlp_dim}\n"
        f"- {sum(cfg.parameter_counts().values()):,} parameters\n"
        f"- test accuracy: {score}\n{trained}\n"
        "Load it with `vit_demo.checkpoints.load(folder)` (model and preprocessing info) or "
        "`vit_demo.model.ViT.from_pretrained(folder)` (the model alone).\n"
    )


def _replace_folder(new: Path, target: Path) -> None:
    if target.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, retired / target.name)
        os.replace(new, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(new, target)


def zip_checkpoint(folder: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Zip a checkpoint folder (for a browser download); the archive holds one folder."""
    folder, destination = Path(folder), Path(destination)
    partial = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            if file.is_file():
                archive.write(file, f"{folder.name}/{file.name}")
    os.replace(partial, destination)
    return destination


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[ViT, dict]:
    """A checkpoint folder, its zip, or a `.pt`/`.pth` dict -> (model in eval mode, info)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.is_dir():
        config = read_json(_read_limited(path / CONFIG_NAME), f"{path / CONFIG_NAME}")
        state_dict = read_tensors(_read_limited(path / WEIGHTS_NAME), f"{path / WEIGHTS_NAME}")
    elif path.suffix.lower() == ".zip":
        config, state_dict = _read_zip(path)
    elif path.suffix.lower() in (".pt", ".pth"):
        config, state_dict = _read_torch_file(path)
    elif path.suffix.lower() == ".safetensors":
        raise CheckpointError(
            f"{path.name} holds only weights: give the folder that also has {CONFIG_NAME}, or a zip of it"
        )
    else:
        raise CheckpointError(
            f"{path.name} is not a checkpoint: expected a folder with {CONFIG_NAME} and {WEIGHTS_NAME}, "
            f"a .zip of such a folder, or a .pt/.pth file"
        )
    return _build(config, state_dict, device)


def _read_limited(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(
            f"{path.parent} has no {path.name}: a checkpoint folder needs {CONFIG_NAME} and {WEIGHTS_NAME}"
        )
    size = path.stat().st_size
    if size > max_checkpoint_bytes():
        raise CheckpointError(_too_big(path.name, size))
    return path.read_bytes()


def _too_big(name: str, size: int) -> str:
    return (
        f"{name} is {format_bytes(size)}, over the {format_bytes(max_checkpoint_bytes())} limit for checkpoints "
        f"(set VIT_DEMO_MAX_CHECKPOINT_MB to allow more)"
    )


def read_json(raw: bytes, where: str) -> dict:
    """A JSON object from untrusted bytes; a CheckpointError that says what is wrong."""
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{where} is not valid JSON ({error})") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} must hold a JSON object")
    return config


def read_tensors(raw: bytes, where: str) -> dict[str, torch.Tensor]:
    """Tensors from untrusted safetensors bytes (no code runs); a CheckpointError if broken."""
    try:
        return load_safetensors_bytes(raw)
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{where} is not a readable safetensors file ({error}); it may be truncated or corrupt"
        ) from error


def read_zip_members(
    path: str | os.PathLike, required: tuple[str, ...], optional: tuple[str, ...] = (), limits: dict | None = None
) -> dict:
    """The files called `required` (and those of `optional` that are there) in a checkpoint's
    zip, by name, as bytes. Each is read only up to its limit (`limits`, else the checkpoint
    limit; `MEMBER_LIMITS` for the small ones), whatever the zip's directory declares: a member
    that inflates past it is refused when it gets there (zip bombs). A missing required file or
    a broken zip is a CheckpointError."""
    path = Path(path)
    limit = max_checkpoint_bytes()
    if path.stat().st_size > limit:
        raise CheckpointError(_too_big(path.name, path.stat().st_size))
    limits = {**MEMBER_LIMITS, **(limits or {})}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {Path(info.filename).name: info for info in archive.infolist() if not info.is_dir()}
            for needed in required:
                if needed not in members:
                    raise CheckpointError(f"{path.name} has no {needed}: zip a checkpoint folder made by this app")
            wanted = [name for name in (*required, *optional) if name in members]
            return {name: _read_member(archive, members[name], path.name, limits.get(name, limit)) for name in wanted}
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path.name} is not a readable zip file ({error})") from error


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, archive_name: str, limit: int) -> bytes:
    """A member's bytes, refused if it declares more than `limit`, and inflated a chunk at a time.
    zipfile reads no further than a member declares: one that holds more fails its checksum there."""
    where = f"{archive_name}/{Path(member.filename).name}"
    allowed = f"the {format_bytes(limit)} limit " + (
        "for checkpoints (set VIT_DEMO_MAX_CHECKPOINT_MB to allow more)"
        if limit == max_checkpoint_bytes()
        else "for that file"
    )
    if member.file_size > limit:  # what it declares: refused before inflating anything
        raise CheckpointError(f"{where} is {format_bytes(member.file_size)} unpacked, over {allowed}")
    data = bytearray()
    with archive.open(member) as file:  # in chunks: a read's buffers stay the chunk's size
        while chunk := file.read(CHUNK):
            data += chunk
    return bytes(data)


def _read_zip(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    raw = read_zip_members(path, (CONFIG_NAME, WEIGHTS_NAME))
    config = read_json(raw[CONFIG_NAME], f"{path.name}/{CONFIG_NAME}")
    return config, read_tensors(raw[WEIGHTS_NAME], f"{path.name}/{WEIGHTS_NAME}")


def _read_torch_file(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    size = path.stat().st_size
    if size > max_checkpoint_bytes():
        raise CheckpointError(_too_big(path.name, size))
    raw = path.read_bytes()
    # torch.save writes a zip (legacy files: a pickle, protocol 2+). Anything else is another
    # kind of file renamed, and must not be reported as a refused pickle.
    if not (raw.startswith(b"PK\x03\x04") or raw[:1] == b"\x80"):
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch file (it does not start like a file written by torch.save); "
            f"it may be truncated, corrupt or another kind of file renamed"
        )
    try:
        payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path.name} was refused: it contains Python objects other than tensors and plain data, "
            f"which could run code when loaded. Save a dict of config, state_dict and info instead. ({error})"
        ) from error
    except Exception as error:
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch file ({error}); it may be truncated or corrupt"
        ) from error
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= set(payload):
        raise CheckpointError(f"{path.name} must hold a dict with keys 'config', 'state_dict' and 'info'")
    config = dict(payload["config"])
    config.update(payload.get("info") or {})
    return config, payload["state_dict"]


def _build(config: dict, state_dict: dict, device: str | torch.device) -> tuple[ViT, dict]:
    _require(config, REQUIRED_MODEL_FIELDS + REQUIRED_INFO)
    try:
        model_config = ViTConfig(**{name: config[name] for name in MODEL_FIELDS if name in config})
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's config is invalid: {error}") from error
    info = {key: value for key, value in config.items() if key not in MODEL_FIELDS}
    info["image_size"], info["channels"] = model_config.image_size, model_config.channels
    _check_info(info, model_config)
    _check_size(model_config)

    model = ViT(model_config)
    expected = model.state_dict()
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError("the checkpoint's weights must be a mapping of names to tensors")
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{name}: weights {tuple(state_dict[name].shape)} vs config {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state_dict and state_dict[name].shape != tensor.shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            parts.append("shapes differ — " + "; ".join(mismatched[:6]) + (" …" if len(mismatched) > 6 else ""))
        if missing:
            parts.append("missing weights — " + ", ".join(missing[:6]) + (" …" if len(missing) > 6 else ""))
        if unexpected:
            parts.append("unexpected weights — " + ", ".join(unexpected[:6]) + (" …" if len(unexpected) > 6 else ""))
        raise CheckpointError("the weights do not fit the architecture in the config: " + "; ".join(parts))
    model.load_state_dict({name: tensor.to(expected[name].dtype) for name, tensor in state_dict.items()})
    return model.to(device).eval(), info


def _check_size(config: ViTConfig) -> None:
    """Refuse, from the config alone, a model the server could not afford to build: its weights
    over the checkpoint limit, or one picture's pass over the training memory limit."""
    parameters = sum(config.parameter_counts().values())
    if 4 * parameters > max_checkpoint_bytes():
        raise CheckpointError(
            f"the checkpoint's config declares a model of {parameters:,} parameters "
            f"({format_bytes(4 * parameters)}), over the {format_bytes(max_checkpoint_bytes())} limit for "
            "checkpoints (VIT_DEMO_MAX_CHECKPOINT_MB)"
        )
    memory = estimated_training_memory_bytes(config, batch_size=1)
    allowed = settings.megabytes("VIT_DEMO_MAX_TRAIN_MEMORY_MB")
    if memory > allowed:
        raise CheckpointError(
            f"the checkpoint's config declares a model that needs about {format_bytes(memory)} for one picture, "
            f"over the {format_bytes(allowed)} limit (VIT_DEMO_MAX_TRAIN_MEMORY_MB)"
        )


def _require(config: dict, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in config]
    if missing:
        raise CheckpointError(f"the checkpoint's config is missing: {', '.join(missing)}")


def _dataset_spec(info: dict):
    try:
        return spec_of(info)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's config names {error}") from error


def _check_info(info: dict, model_config: ViTConfig) -> None:
    spec = _dataset_spec(info)
    info["dataset"] = spec.key
    if model_config.channels not in (1, 3):
        # Any image_size fits (the dataset is prepared at it); pictures are grey or colour.
        raise CheckpointError(
            f"a {spec.title} model must take grey (1-channel) or colour (3-channel) pictures, "
            f"this config says {model_config.channels} channels"
        )
    names, mean, std = info["class_names"], info["mean"], info["std"]
    if (
        not isinstance(names, list)
        or len(names) != model_config.num_classes
        or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)
    ):
        raise CheckpointError(
            f"class_names must be a list of {model_config.num_classes} names (one per class, of at most 100 "
            "characters each)"
        )
    try:
        for key, values, low in (("mean", mean, None), ("std", std, 1e-6)):
            if not isinstance(values, list) or len(values) != model_config.channels:
                raise ValueError(f"{key} must be a list of {model_config.channels} numbers (one per channel)")
            info[key] = [validation.number(f"{key}[{i}]", v, low) for i, v in enumerate(values)]
        if info.get("test_accuracy") is not None:
            info["test_accuracy"] = validation.number("test_accuracy", info["test_accuracy"], 0, 1)
    except ValueError as error:
        raise CheckpointError(f"the checkpoint's config: {error}") from error
    info.setdefault("test_accuracy", None)
