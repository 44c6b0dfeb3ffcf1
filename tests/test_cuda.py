"""On a GPU (skipped without one): a run trains on the GPU and comes back on the CPU, as a
ZeroGPU worker hands it to the server; the CIFAR-10 presets' shapes train there too."""

import pytest
import torch

from tools.synthetic_cifar import write_cifar10
from vit_demo.data import load_split
from vit_demo.recipes import recipe_for
from vit_demo.service.jobs import TrainingJob, run_training
from vit_demo.service.knobs import Knobs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def test_a_run_on_the_gpu_learns_and_hands_back_cpu_tensors(data_dir):
    knobs = Knobs.of_preset("mnist", recipe_for("mnist").preset("quick"))
    training = knobs.train_config(data_dir=str(data_dir), train_limit=8192, test_limit=1000)
    watched = load_split("mnist", train=False, data_dir=str(data_dir), limit=8).images
    updates = list(run_training(TrainingJob(knobs.shape, training, watched)))
    last = updates[-1]
    assert last.progress.done and last.progress.test_accuracy > 0.8  # 4 epochs of 8,192 digits
    assert "eager fp32" in last.progress.step_path  # the app's one path, on the GPU as on a CPU
    tensors = [*last.state_dict.values(), last.guesses, last.position_similarity, last.snapshot.probe_rollout]
    assert all(t.device.type == "cpu" for t in tensors)  # what a server, which never starts CUDA, can read


@pytest.mark.parametrize("preset", [p.name for p in recipe_for("cifar10").presets])
def test_the_cifar_presets_shapes_train_on_the_gpu(tmp_path, preset):
    write_cifar10(tmp_path, per_batch=256)
    knobs = Knobs.of_preset("cifar10", recipe_for("cifar10").preset(preset))
    watched = load_split("cifar10", train=False, data_dir=str(tmp_path), limit=8).images
    last = list(run_training(TrainingJob(knobs.shape, knobs.train_config(data_dir=str(tmp_path)), watched)))[-1]
    assert last.progress.done and last.progress.step == round(knobs.epochs * 1280 / 128)
