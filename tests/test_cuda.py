"""GPU paths: the whole step as a CUDA graph, and every notebook's smoke profile on device 'cuda'.

Skipped on machines without CUDA (CI); run on a GPU machine with `pytest tests/test_cuda.py`."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lmvae_core.models import VAE
from lmvae_core.models.moe_vae import MoEVAE, MoEVAEConfig
from lmvae_core.models.vae import VAEConfig
from lmvae_core.runtime import seed_everything
from lmvae_core.training import NonFiniteLossError, TrainConfig, train
from lmvae_core.training import loop as loop_module
from lmvae_core.training.graphs import CudaGraphStep, should_graph

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks" / "src").glob("0*.py"))
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class TinyAE(nn.Module):
    """A deterministic, graph-safe loss (no random numbers), so that graphed and eager training must agree.
    `calls` counts the loss's evaluations on the device, in place, as a graph replays them; `nan_at` poisons one."""
    graph_safe = True

    def __init__(self, nan_at: int = -1):
        super().__init__()
        self.enc, self.dec = nn.Linear(784, 32), nn.Linear(32, 784)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.nan_at = nan_at

    def loss(self, x):
        x = x.flatten(1)
        err = (self.dec(torch.relu(self.enc(x))) - x).pow(2).sum(-1).mean()
        poison = torch.where(self.calls == self.nan_at, float("nan"), 0.0)
        self.calls.add_(1)
        return err + poison, {"mse": err}


class RecordingGraphStep(CudaGraphStep):
    made: list = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingGraphStep.made.append(self)


def test_graphs_only_on_cuda_and_auto_only_for_safe_long_runs():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert not should_graph(True, cpu, 10**6, 100, True)
    assert should_graph("auto", gpu, 100, 100, True) and not should_graph("auto", gpu, 99, 100, True)
    assert not should_graph("auto", gpu, 10**6, 100, False) and should_graph(True, gpu, 1, 100, False)
    with pytest.raises(ValueError, match="cuda_graph must be"):
        TrainConfig(cuda_graph="sometimes")


def eager_and_graphed(make, mnist_sample, monkeypatch, **settings):
    """The same model (made after seed 0) trained eagerly and as CUDA graphs: two epochs of 300 images in batches
    of 64, three steps per replay. Returns (model, history) of each and the graphed run's CudaGraphStep."""
    monkeypatch.setattr(loop_module, "CudaGraphStep", RecordingGraphStep)
    RecordingGraphStep.made.clear()
    x = mnist_sample.x[:300].to("cuda")
    runs = {}
    for graph in (False, True):
        torch.manual_seed(0)
        model = make().to("cuda")
        hist = train(model, x, TrainConfig(epochs=2, batch_size=64, progress=False, compile=False, cuda_graph=graph,
                                           graph_steps=3, **settings))
        runs[graph] = (model, hist)
    [stepper] = RecordingGraphStep.made
    return runs[False], runs[True], stepper


@cuda_only
def test_graphed_training_follows_the_eager_trajectory(mnist_sample, monkeypatch):
    """Two epochs of 300 images in batches of 64, three steps per replay: graphs for a block of 3 x 64, one 64
    and the last 44. The warm-up is undone: the parameters, the buffer the loss updates and the per-epoch
    losses match eager training."""
    (eager, h_eager), (graphed, h_graphed), stepper = eager_and_graphed(TinyAE, mnist_sample, monkeypatch,
                                                                        binarize=None)
    assert len(stepper.graphs) == 3 and stepper.eager_steps == 0 and stepper.failed is None
    assert int(graphed.calls) == int(eager.calls) == 10  # the warm-up's loss calls were undone too
    for p, q in zip(eager.parameters(), graphed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    assert [h["mse"] for h in h_graphed] == pytest.approx([h["mse"] for h in h_eager], rel=1e-5)


def small_vae():
    return VAE(hidden=(64,), latent_dim=8)


def small_moe():
    return MoEVAE(MoEVAEConfig(n_experts=3, expert=VAEConfig(latent_dim=8, hidden=(64,)), manager_hidden=(32,)))


@cuda_only
@pytest.mark.parametrize("make", [small_vae, small_moe], ids=["vae", "moe"])
def test_graphed_random_loss_draws_what_eager_draws(mnist_sample, monkeypatch, make):
    """A loss with random numbers (the reparameterisation noise; for the mixture, drawn under vmap per expert) and
    dynamic binarisation between epochs: the graphed run replays the eager run's draws, because the warm-up's
    draws are undone with the generator's state, so both runs follow one trajectory."""
    (eager, h_eager), (graphed, h_graphed), stepper = eager_and_graphed(make, mnist_sample, monkeypatch)
    assert stepper.failed is None and stepper.eager_steps == 0
    for p, q in zip(eager.parameters(), graphed.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in h_graphed] == pytest.approx([h["loss"] for h in h_eager], rel=1e-5)


@cuda_only
def test_graphed_training_still_names_the_first_non_finite_step(mnist_sample):
    x = mnist_sample.x[:640].to("cuda")
    model = TinyAE(nan_at=7).to("cuda")
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 7"):  # inside the second block of 4 steps
        train(model, x, TrainConfig(epochs=1, batch_size=64, binarize=None, progress=False, cuda_graph=True,
                                    graph_steps=4))


@cuda_only
@pytest.mark.parametrize("autocast", [None, "bf16"])
def test_compiled_graphed_vae_learns(mnist_sample, autocast):
    seed_everything(0)
    x = mnist_sample.x[:512].to("cuda")
    vae = VAE(hidden=(64,), latent_dim=8).to("cuda")
    hist = train(vae, x, TrainConfig(epochs=4, batch_size=64, progress=False, compile=True, cuda_graph=True,
                                     autocast=autocast))
    assert hist[-1]["loss"] < hist[0]["loss"] - 5
    assert all(torch.isfinite(p).all() for p in vae.parameters())


@cuda_only
def test_compiled_graphed_mixture_learns(mnist_sample, monkeypatch):
    """The MoE-VAE of notebook 00 (experts under vmap) compiles and is captured whole, with no eager fallback."""
    monkeypatch.setattr(loop_module, "CudaGraphStep", RecordingGraphStep)
    RecordingGraphStep.made.clear()
    seed_everything(0)
    x = mnist_sample.x[:512].to("cuda")
    moe = small_moe().to("cuda")
    hist = train(moe, x, TrainConfig(epochs=4, batch_size=64, progress=False, compile=True, cuda_graph="auto",
                                     compile_min_steps=10))
    [stepper] = RecordingGraphStep.made
    assert stepper.failed is None and stepper.eager_steps == 0 and len(stepper.graphs) == 1
    assert hist[-1]["loss"] < hist[0]["loss"] - 5


@cuda_only
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_smoke_profile_runs_on_cuda(notebook, tmp_path):
    """The notebook's source, run as a script in the smoke profile with device 'auto', runs on the GPU."""
    env = os.environ | {"LMVAE_PROFILE": "smoke", "MPLBACKEND": "Agg", "LMVAE_OFFLINE": "1",
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(ROOT / "notebooks" / "src" / notebook)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "device=cuda" in done.stdout
