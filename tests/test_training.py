import pytest
import torch

from lmvae_core.models import VAE
from lmvae_core.runtime import pick_device, resolve_profile, seed_everything
from lmvae_core.training import NonFiniteLossError, TrainConfig, train


def losses(seed, x):
    seed_everything(seed)
    vae = VAE(hidden=(32,), latent_dim=4)
    return [h["loss"] for h in train(vae, x, TrainConfig(epochs=2, batch_size=64, progress=False))]


def test_same_seed_same_losses_on_cpu(mnist_sample):
    x = mnist_sample.x[:256]
    a, b, c = losses(7, x), losses(7, x), losses(8, x)
    assert a == b and a != c
    assert a[1] < a[0]  # it learns


def test_nan_loss_stops_with_step_and_terms(mnist_sample):
    vae = VAE(hidden=(16,), latent_dim=2)
    calls = {"n": 0}

    def loss_fn(batch):
        calls["n"] += 1
        loss, terms = vae.loss(batch)
        if calls["n"] == 3:
            loss = loss * float("nan")
            terms = {**terms, "kl": torch.tensor(float("inf"))}
        return loss, terms

    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 2.*kl=inf"):
        train(vae, mnist_sample.x[:256], TrainConfig(epochs=1, batch_size=32, progress=False), loss_fn=loss_fn)


def test_bad_train_config():
    with pytest.raises(ValueError):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError):
        TrainConfig(binarize="sometimes")


def test_device_and_profile_resolution(monkeypatch):
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda:0")
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        resolve_profile("fast")
    monkeypatch.setenv("LMVAE_PROFILE", "smoke")
    assert resolve_profile(None) == "smoke"
    assert resolve_profile("auto") == ("paper" if torch.cuda.is_available() else "quick")
    with pytest.raises(TypeError):
        seed_everything("0")
