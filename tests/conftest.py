"""Shared fixtures. The environment is fixed before anything imports gradio or torch hub
code, so no test ever reaches the network."""

import os
import shutil
import sys

os.environ.setdefault("VIT_DEMO_DOWNLOAD", "0")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(os.cpu_count() or 1)


# The smallest model the tests train: 16 patches, 2 blocks of width 32.
TINY = dict(patch_size=7, dim=32, depth=2, heads=2, mlp_dim=64)

# TorchInductor compiles its kernels with this compiler (torch._inductor.config.cpp.cxx).
CXX = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")
needs_cxx = pytest.mark.skipif(
    shutil.which(CXX) is None, reason=f"no C++ compiler ({CXX}) for TorchInductor: --compile falls back to eager"
)


def real_data_dir() -> Path | None:
    for candidate in (os.environ.get("VIT_DEMO_DATA"), SHARED_DATA):
        if candidate and (Path(candidate) / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file():
            return Path(candidate).resolve()  # tests link to files in it from other folders
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = real_data_dir()
    if found is None:
        pytest.skip(
            "real MNIST not found: set VIT_DEMO_DATA to a folder with MNIST/raw/*-ubyte (CI has ../shared/data)"
        )
    return found


@pytest.fixture(scope="session")
def mnist_model(data_dir):
    """A well-trained MNIST model and its info: the shipped checkpoint when present,
    else one trained here for a few seconds (good enough to compare input pipelines)."""
    from vit_demo import checkpoints
    from vit_demo.training import TrainConfig, create_model, run_to_completion

    shipped = REPO / "checkpoints" / "mnist"
    if (shipped / "config.json").is_file():
        return checkpoints.load(shipped)
    model = create_model("mnist", seed=0, patch_size=7, dim=64, depth=4, heads=4, mlp_dim=128)
    final = run_to_completion(
        model, TrainConfig(dataset="mnist", epochs=2, train_limit=20000, data_dir=str(data_dir), evaluations=0)
    )
    info = checkpoints.default_info("mnist")
    info.update(test_accuracy=final.test_accuracy, image_size=28, channels=1)
    return model, info


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """A checkpoints folder with small untrained MNIST and Fashion-MNIST models, named
    like the shipped ones: enough for the app's plumbing, which needs no good model."""
    from vit_demo import checkpoints
    from vit_demo.training import create_model

    folder = tmp_path_factory.mktemp("checkpoints")
    for dataset in ("mnist", "fashion_mnist"):
        model = create_model(dataset, seed=0, patch_size=7, dim=32, depth=2, heads=4, mlp_dim=64)
        checkpoints.save(model, folder / dataset, checkpoints.default_info(dataset))
    return folder


@pytest.fixture
def one_thread():
    from ui_helpers import one_torch_thread

    with one_torch_thread():
        yield


@pytest.fixture
def service(tmp_path, tiny_checkpoints, one_thread):
    """The app's service over tiny shipped models, with no data folder."""
    from ui_helpers import settings_for

    from vit_demo.service.server import Service

    service = Service(settings_for(tmp_path, tiny_checkpoints))
    yield service
    service.close()


@pytest.fixture
def trainer(tmp_path, tiny_checkpoints, data_dir, one_thread):
    """The app's service with the real data: training works."""
    from ui_helpers import settings_for

    from vit_demo.service.server import Service

    service = Service(settings_for(tmp_path, tiny_checkpoints, data_dir))
    yield service
    service.close()


@pytest.fixture
def explore(tiny_checkpoints):
    """Explore's handlers over the tiny shipped models."""
    from vit_demo.service.library import ModelLibrary
    from vit_demo.ui.explore_events import ExploreHandlers

    return ExploreHandlers(ModelLibrary(tiny_checkpoints), REPO / "examples")


@pytest.fixture(scope="session")
def shipped_explore():
    """Explore's handlers over the shipped, trained models (checkpoints/), as the app serves them."""
    from vit_demo.service.library import ModelLibrary
    from vit_demo.ui.explore_events import ExploreHandlers

    return ExploreHandlers(ModelLibrary(REPO / "checkpoints"), REPO / "examples")


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where the screenshots go: $VIT_DEMO_SCREENSHOTS to look at them, else the test's own folder."""
    folder = Path(os.environ.get("VIT_DEMO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
