"""The whole step compiled on a CPU (training/compiled_step.py) against the eager step it replaces.

Inductor draws its own random numbers; under `fallback_random` it draws torch's, which makes the compiled and the
eager trajectories comparable step by step from the same seeds."""
import copy
import warnings

import pytest
import torch
from torch._dynamo.utils import counters

from lmvae_core.models import VAE
from lmvae_core.runtime import seed_everything
from lmvae_core.training import TrainConfig, make_optimizer, train, train_step
from lmvae_core.training import loop
from lmvae_core.training.compiled_step import CompiledStep


@pytest.fixture
def torch_random_in_compiled_code():
    import torch._inductor.config as inductor_config

    with inductor_config.patch(fallback_random=True):  # (monkeypatch's undo deletes a config entry)
        yield


def small_vae(seed=0):
    seed_everything(seed)
    return VAE(hidden=(32,), latent_dim=4)


def batches(mnist_sample, sizes):
    x = torch.bernoulli(mnist_sample.x[:sum(sizes)], generator=torch.Generator().manual_seed(1))
    return list(x.split(sizes))


def eager_and_compiled(mnist_sample, sizes, seed=0, lr=1e-3):
    """The same model trained on the same batches from the same seeds, eagerly and through CompiledStep."""
    eager = small_vae(seed)
    compiled = copy.deepcopy(eager)
    opt_e = make_optimizer(eager.parameters(), TrainConfig(lr=lr))
    opt_c = make_optimizer(compiled.parameters(), TrainConfig(lr=lr))
    step = CompiledStep(compiled, compiled.loss, opt_c)
    rows = []
    for s, b in enumerate(batches(mnist_sample, sizes)):
        torch.manual_seed(100 + s)
        le, te = train_step(eager.loss, b, opt_e)
        torch.manual_seed(100 + s)
        lc, tc = step(b)
        rows.append((float(le), float(lc), {k: float(v) for k, v in te.items()}, {k: float(v) for k, v in tc.items()}))
    return eager, compiled, opt_e, opt_c, step, rows


def assert_same_state(eager, compiled, opt_e, opt_c, atol=2e-5):
    for (name, pe), pc in zip(eager.named_parameters(), compiled.parameters()):
        assert torch.allclose(pe, pc, atol=atol, rtol=0), name
        se, sc = opt_e.state[pe], opt_c.state[pc]
        assert float(se["step"]) == float(sc["step"])
        assert torch.allclose(se["exp_avg"], sc["exp_avg"], atol=1e-5, rtol=1e-4), name
        assert torch.allclose(se["exp_avg_sq"], sc["exp_avg_sq"], atol=1e-7, rtol=1e-3), name


def test_compiled_step_follows_the_eager_trajectory(mnist_sample, torch_random_in_compiled_code):
    start = small_vae(0)
    eager, compiled, opt_e, opt_c, step, rows = eager_and_compiled(mnist_sample, [32] * 8)
    assert step.compiled_steps == 8 and step.eager_steps == 0 and step.failed is None
    for le, lc, te, tc in rows:
        assert lc == pytest.approx(le, rel=1e-5)
        assert tc.keys() == te.keys() and all(tc[k] == pytest.approx(te[k], rel=1e-4, abs=1e-4) for k in te)
    assert rows[-1][0] < rows[0][0]  # it learns
    assert_same_state(eager, compiled, opt_e, opt_c)
    with torch.no_grad():
        moved = max(float((a - b).abs().max()) for a, b in zip(start.parameters(), compiled.parameters()))
    assert moved > 100 * 2e-5  # the parameters moved far more than the tolerance above
    # a second model in the same process, with another learning rate, reuses the compiled code with its own tensors
    graphs = counters["stats"]["unique_graphs"]
    eager2, compiled2, opt_e2, opt_c2, step2, rows2 = eager_and_compiled(mnist_sample, [32] * 3, seed=5, lr=3e-3)
    assert counters["stats"]["unique_graphs"] == graphs and step2.compiled_steps == 3
    assert [r[1] for r in rows2] == pytest.approx([r[0] for r in rows2], rel=1e-5)
    assert_same_state(eager2, compiled2, opt_e2, opt_c2)
    assert_same_state(eager, compiled, opt_e, opt_c)  # and leaves the first model alone


def test_other_batch_shapes_run_eagerly_on_the_same_state(mnist_sample, torch_random_in_compiled_code):
    eager, compiled, opt_e, opt_c, step, rows = eager_and_compiled(mnist_sample, [32, 32, 16, 32])
    assert (step.compiled_steps, step.eager_steps) == (3, 1)
    assert [r[1] for r in rows] == pytest.approx([r[0] for r in rows], rel=1e-5)
    assert_same_state(eager, compiled, opt_e, opt_c)


def test_seeded_runs_repeat_bitwise(mnist_sample):
    x = mnist_sample.x[:256]

    def run(seed):
        vae = small_vae(seed)
        hist = train(vae, x, TrainConfig(epochs=2, batch_size=64, progress=False, compile=True))
        return [h["loss"] for h in hist], [p.detach().clone() for p in vae.parameters()]

    (la, pa), (lb, pb), (lc, _) = run(3), run(3), run(4)
    assert la == lb and all(torch.equal(a, b) for a, b in zip(pa, pb))
    assert la != lc and la[-1] < la[0]


def test_train_compiles_the_whole_step_only_where_it_applies(mnist_sample, monkeypatch):
    made = []

    class Spy(CompiledStep):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(loop, "CompiledStep", Spy)
    x = mnist_sample.x[:128]

    def trained(cfg, **kw):
        made.clear()
        train(small_vae(), x, cfg, **kw)
        return len(made) == 1 and made[0].compiled_steps > 0

    fast = dict(epochs=1, batch_size=64, progress=False)
    assert trained(TrainConfig(**fast, compile=True))
    assert trained(TrainConfig(**fast, cpu_compile_min_steps=2))  # 'auto' in a run long enough
    assert not trained(TrainConfig(**fast))  # 'auto' in a short run
    assert not trained(TrainConfig(**fast, compile=False, cpu_compile_min_steps=1))
    assert not trained(TrainConfig(**fast, compile=True, grad_clip=1.0))
    assert not trained(TrainConfig(**fast, compile=True, autocast="bf16"))
    # 'auto' only where compiling was measured to pay: not the conv VAE, nor models without `step_compiles`
    made.clear()
    train(VAE(arch="conv", hidden=(16,), channels=(4, 8), latent_dim=2), x, TrainConfig(**fast, cpu_compile_min_steps=1))
    assert not made
    assert not loop.should_compile_step(TrainConfig(cpu_compile_min_steps=1), "cpu", 10, True,
                                        make_optimizer(small_vae().parameters(), TrainConfig()), pays=False)
    vae = small_vae()
    assert not trained(TrainConfig(**fast, compile=True), loss_fn=vae.loss)  # a caller's loss: not known graph-safe
    sgd = torch.optim.SGD(small_vae().parameters(), lr=0.1)
    assert not CompiledStep.supports(sgd) and not loop.should_compile_step(TrainConfig(compile=True), "cpu", 1, True, sgd)
    adam = make_optimizer(small_vae().parameters(), TrainConfig())
    assert not loop.should_compile_step(TrainConfig(compile=True), "cuda", 10**6, True, adam)  # CUDA: graphs instead
    amsgrad = torch.optim.Adam(small_vae().parameters(), amsgrad=True)
    with pytest.raises(ValueError, match="plain Adam"):
        CompiledStep(vae, vae.loss, amsgrad)


def test_a_loss_that_cannot_compile_trains_eagerly(mnist_sample):
    """A graph break (here a host read of the loss) fails the full-graph compile: a warning, then eager steps that
    match train_step's exactly."""
    def host_reading_loss(model):
        def loss(b):
            value, terms = model.loss(b)
            if float(value) > 1e9:
                raise AssertionError
            return value, terms
        return loss

    eager = small_vae(2)
    compiled = copy.deepcopy(eager)
    opt_e = make_optimizer(eager.parameters(), TrainConfig())
    opt_c = make_optimizer(compiled.parameters(), TrainConfig())
    step = CompiledStep(compiled, host_reading_loss(compiled), opt_c)
    for s, b in enumerate(batches(mnist_sample, [32] * 3)):
        torch.manual_seed(s)
        le, _ = train_step(eager.loss, b, opt_e)
        torch.manual_seed(s)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lc, _ = step(b)
        assert bool(caught) == (s == 0)
        assert float(lc) == float(le)
    assert step.failed and step.compiled_steps == 0 and step.eager_steps == 3
    assert all(torch.equal(a, b) for a, b in zip(eager.parameters(), compiled.parameters()))
