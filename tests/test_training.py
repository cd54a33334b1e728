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


def poisoned_loss(vae, at_call: int, term: str, value: float, finite_grad: bool = False):
    """vae.loss, except that call number `at_call` returns a NaN loss and sets `term` to `value`;
    finite_grad keeps the gradient finite so training can go on past the bad step. Returns (loss_fn, calls)."""
    calls = {"n": 0}

    def loss_fn(batch):
        calls["n"] += 1
        loss, terms = vae.loss(batch)
        if calls["n"] == at_call:
            loss = loss.detach() * float("nan") + 0 * loss if finite_grad else loss * float("nan")
            terms = {**terms, term: torch.tensor(value)}
        return loss, terms

    return loss_fn, calls


def test_nan_loss_stops_with_step_and_terms(mnist_sample):
    vae = VAE(hidden=(16,), latent_dim=2)
    loss_fn, _ = poisoned_loss(vae, 3, "kl", float("inf"))
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


def test_nan_guard_is_deferred_but_names_the_first_bad_step(mnist_sample):
    """The guard checks every check_every steps (no host sync per step); a NaN at step 5 followed by
    finite steps is still reported as step 5, with its terms, when the check comes."""
    vae = VAE(hidden=(16,), latent_dim=2)
    loss_fn, calls = poisoned_loss(vae, 6, "recon", float("nan"), finite_grad=True)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, step 5.*recon=nan"):
        train(vae, mnist_sample.x[:320], TrainConfig(epochs=1, batch_size=32, progress=False, check_every=7),
              loss_fn=loss_fn)
    assert calls["n"] == 7  # it trained past the bad step until the deferred check


def test_loss_monitor_means_match_host_means():
    from lmvae_core.training import LossMonitor

    m = LossMonitor(check_every=3)
    vals = [1.0, 2.0, 4.0, 8.0]
    for v in vals:
        m.update(torch.tensor(v), {"a": torch.tensor(v), "b": torch.tensor(2 * v)})
    assert m.means() == {"a": sum(vals) / 4, "b": 2 * sum(vals) / 4}
    assert m.means() == {}


def test_compile_auto_only_on_cuda_for_long_runs():
    from lmvae_core.training import should_compile

    cfg = TrainConfig(compile_min_steps=1000)
    assert not should_compile(cfg, torch.device("cpu"), 10**6)
    assert should_compile(cfg, torch.device("cuda"), 1000) and not should_compile(cfg, torch.device("cuda"), 999)
    assert should_compile(TrainConfig(compile=True), torch.device("cpu"), 1)
    assert not should_compile(TrainConfig(compile=False), torch.device("cuda"), 10**6)
    with pytest.raises(ValueError, match="compile must be"):
        TrainConfig(compile="yes")
    with pytest.raises(ValueError, match="autocast must be"):
        TrainConfig(autocast="fp8")


def test_bf16_autocast_trains_and_reports_float32_terms(mnist_sample):
    seed_everything(0)
    vae = VAE(hidden=(32,), latent_dim=4)
    hist = train(vae, mnist_sample.x[:256], TrainConfig(epochs=3, batch_size=64, progress=False, autocast="bf16"))
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert all(p.dtype == torch.float32 for p in vae.parameters())


def test_precision_gap_compares_the_same_samples(mnist_sample):
    from lmvae_core.metrics import mean_iwae
    from lmvae_core.training import precision_gap

    seed_everything(0)
    vae = VAE(hidden=(32,), latent_dim=4)
    x = torch.bernoulli(mnist_sample.x[:64])
    train(vae, x, TrainConfig(epochs=2, batch_size=32, progress=False))
    gap = precision_gap(vae, x, k=20, seed=3)
    assert gap["fp32"] == pytest.approx(mean_iwae(vae, x, k=20, generator_seed=3), abs=1e-5)
    assert gap["diff"] == pytest.approx(gap["bfloat16"] - gap["fp32"], abs=1e-4)
    assert 0 < gap["max_abs_diff_per_image"] < 5  # bf16 rounds (~3 significant digits), it does not break the bound
    same = precision_gap(vae, x, k=20, seed=3, dtype=torch.float32)  # autocast to fp32 changes nothing
    assert abs(same["diff"]) < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_smoke_training_compiled_bf16(mnist_sample):
    """A short run on the GPU: compiled step (forced, the run is short) and bf16 autocast."""
    seed_everything(0)
    x = mnist_sample.x[:512].to("cuda")
    vae = VAE(hidden=(64,), latent_dim=8).to("cuda")
    hist = train(vae, x, TrainConfig(epochs=3, batch_size=128, progress=False, compile=True, autocast="bf16"))
    assert hist[-1]["loss"] < hist[0]["loss"]
    plain = VAE(hidden=(64,), latent_dim=8).to("cuda")
    hist = train(plain, x, TrainConfig(epochs=3, batch_size=128, progress=False))
    assert hist[-1]["loss"] < hist[0]["loss"] and next(plain.parameters()).is_cuda


def test_loss_monitor_terms_may_change_between_steps():
    from lmvae_core.training import LossMonitor

    m = LossMonitor(check_every=10)
    m.update(torch.tensor(1.0), {"a": torch.tensor(1.0)})
    m.update(torch.tensor(2.0), {"a": torch.tensor(3.0), "b": torch.tensor([2.0, 4.0])})
    assert m.means() == {"a": 2.0, "b": [1.0, 2.0]}  # sums over both steps / 2
    m.update(torch.tensor(float("inf")), {"a": torch.tensor(5.0)})
    with pytest.raises(NonFiniteLossError, match="step 2; terms: a=5"):
        m.close()


def test_loss_monitor_takes_blocks_of_steps_like_single_steps():
    """A replayed block of K steps reports its K losses stacked: same means as K single updates, and a NaN
    inside a block is named by its own step."""
    from lmvae_core.training import LossMonitor

    losses = torch.arange(10.0)
    single, block = LossMonitor(check_every=100), LossMonitor(check_every=100)
    for v in losses:
        single.update(v, {"a": v * 2})
    block.update(losses[:4], {"a": losses[:4] * 2}, steps=4)
    for v in losses[4:6]:
        block.update(v, {"a": v * 2})
    block.update(losses[6:], {"a": losses[6:] * 2}, steps=4)
    assert block.step == single.step == 10
    assert block.means() == single.means() == {"a": 9.0}
    bad = LossMonitor(check_every=3, where=lambda s: f"step {s}")
    bad.update(torch.zeros(2), {"a": torch.zeros(2)}, steps=2)
    with pytest.raises(NonFiniteLossError, match=r"at step 4; terms: a=-1"):
        bad.update(torch.tensor([0.0, 0.0, float("nan")]), {"a": torch.tensor([0.0, 0.0, -1.0])}, steps=3)


def test_epoch_blocks_hold_the_same_batches_in_the_same_order(mnist_sample):
    from lmvae_core.training import epoch_batches
    from lmvae_core.training.graphs import StepBlock

    x = mnist_sample.x[:300]
    torch.manual_seed(3)
    plain = [b for _, b in epoch_batches(x, 2, 64, binarize=None)]
    torch.manual_seed(3)
    blocks = list(epoch_batches(x, 2, 64, binarize=None, block=3))
    assert [len(b) if isinstance(b, StepBlock) else 1 for _, b in blocks] == [3, 1, 1] * 2
    flat = [r for _, b in blocks for r in (b.batches.unbind(0) if isinstance(b, StepBlock) else [b])]
    assert len(flat) == len(plain) and all(torch.equal(a, b) for a, b in zip(flat, plain))
