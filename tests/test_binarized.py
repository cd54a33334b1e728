"""Binarized regularisation (notebook 03): the r-shifted KL, its prior, its bound, and the model."""
import importlib
import math

import pytest
import torch

from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.metrics import iwae_log_likelihood
from lmvae_core.models.binarized import (BinarizedVAE, BinarizedVAEConfig, mixture_kl_monte_carlo,
                                         mixture_kl_per_dim, shifted_kl, shifted_kl_monte_carlo, two_mode_log_prob)
from lmvae_core.models.vae import VAE, VAEConfig, diag_gaussian_log_prob, gaussian_kl
from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint
from lmvae_core.training.loop import TrainConfig, train
from lmvae_core.papers.binarized import experiments as exp, grid as binarized_grid, replay as rexp
from lmvae_core.papers.binarized import settings as exp_settings

SAMPLE = DataConfig(source="sample")


def _posteriors(n=64, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(n, d, generator=g, dtype=torch.float64) - 0.5
    return mu, logvar


def _kl_gauss(mu1, var1, mu2, var2):
    return 0.5 * (torch.log(var2 / var1) + (var1 + (mu1 - mu2) ** 2) / var2 - 1)


@pytest.mark.parametrize("r", [0.0, 0.5, 1.0, 2.0])
def test_shifted_kl_equals_gaussian_kl_to_signed_mode(r):
    mu, logvar = _posteriors()
    centre = torch.where(mu >= 0, r, -r)
    expected = _kl_gauss(mu, logvar.exp(), centre, torch.ones_like(mu))
    assert torch.allclose(shifted_kl(mu, logvar, r), expected, atol=1e-10)
    # the code's form -0.5 (1 + log s^2 - (|mu| - r)^2 - s^2)
    code = -0.5 * (1 + logvar - (mu.abs() - r) ** 2 - logvar.exp())
    assert torch.allclose(shifted_kl(mu, logvar, r), code, atol=1e-10)


@pytest.mark.parametrize("r", [0.5, 2.0])
def test_shifted_kl_matches_monte_carlo(r):
    mu, logvar = _posteriors(n=8)
    g = torch.Generator().manual_seed(1)
    mc = shifted_kl_monte_carlo(mu, logvar, r, n_samples=100_000, generator=g)
    exact = shifted_kl(mu, logvar, r).sum(-1)
    assert torch.allclose(mc, exact, atol=0.05 + 0.01 * exact.abs().max().item())


def test_reduces_to_standard_kl_and_prior_at_r0():
    mu, logvar = _posteriors()
    assert torch.allclose(shifted_kl(mu, logvar, 0.0), gaussian_kl(mu, logvar), atol=1e-12)
    z = torch.randn(100, 5, dtype=torch.float64)
    assert torch.allclose(two_mode_log_prob(z, 0.0), -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(-1), atol=1e-10)
    # the model at r = 0 is the package's VAE: same loss and ELBO for the same weights and noise
    x = load_split("mnist", "test", SAMPLE).x[:16].bernoulli(generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = VAE(VAEConfig(latent_dim=4, hidden=(32,)))
    binar = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=0.0))
    binar.load_state_dict(plain.state_dict())
    plain.eval(), binar.eval()  # in eval mode terms() reports the ELBO (no dropout or batch norm here)
    eps = torch.randn(16, 4)
    a, b = plain.terms(x, eps=eps), binar.terms(x, eps=eps)
    for k in ("loss", "recon", "kl", "elbo"):
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_two_mode_log_prob_is_the_mixture_density():
    r = 1.3
    z = torch.linspace(-5, 5, 41, dtype=torch.float64).unsqueeze(1)
    n = lambda m: torch.exp(-0.5 * (z - m) ** 2) / math.sqrt(2 * math.pi)
    assert torch.allclose(two_mode_log_prob(z, r), torch.log(0.5 * n(-r) + 0.5 * n(r)).squeeze(1), atol=1e-10)


@pytest.mark.parametrize("r", [0.1, 0.5, 1.0, 3.0])
def test_bound_regularised_kl_plus_dlog2_holds(r):
    """KL(q || mixture) <= sum_j KL_r + d log 2, by quadrature and by Monte Carlo, on random posteriors."""
    mu, logvar = _posteriors(n=32, d=6, seed=int(r * 10))
    d = mu.shape[1]
    bound = shifted_kl(mu, logvar, r).sum(-1) + d * math.log(2)
    exact = mixture_kl_per_dim(mu, logvar, r).sum(-1)
    assert (exact <= bound + 1e-9).all()
    assert (exact >= 0).all()
    g = torch.Generator().manual_seed(2)
    z = mu + torch.randn((20_000, *mu.shape), generator=g, dtype=mu.dtype) * torch.exp(0.5 * logvar)
    log_ratio = diag_gaussian_log_prob(z, mu, logvar) - two_mode_log_prob(z, r)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(z.shape[0])
    assert ((mc - exact).abs() <= 4 * se + 1e-6).all()  # quadrature agrees with sampling
    assert (mc <= bound + 4 * se).all()
    g = torch.Generator().manual_seed(3)
    assert ((mixture_kl_monte_carlo(mu, logvar, r, 20_000, g) - exact).abs() <= 4 * se + 1e-6).all()
    # the gap is not always slack: tight (-> 0) for posteriors far from zero relative to their spread
    far_mu, far_lv = torch.full((1, d), 8.0, dtype=torch.float64), torch.full((1, d), -4.0, dtype=torch.float64)
    gap = shifted_kl(far_mu, far_lv, r).sum(-1) + d * math.log(2) - mixture_kl_per_dim(far_mu, far_lv, r).sum(-1)
    assert gap.item() < 1e-3 + d * math.log(2) * math.exp(-2 * r * 8.0) * 2


@pytest.mark.parametrize("r", [0.5, 2.0, 6.0])
def test_prior_sampler_modes_at_plus_minus_r(r):
    model = BinarizedVAE(BinarizedVAEConfig(latent_dim=6, hidden=(16,), r=r))
    z = model.sample_prior(200_000, generator=torch.Generator().manual_seed(0)).double()
    # moments of 0.5 N(-r,1) + 0.5 N(r,1): mean 0, second moment r^2 + 1, fourth r^4 + 6 r^2 + 3
    assert torch.allclose(z.mean(0), torch.zeros(6, dtype=torch.float64), atol=0.02 * (1 + r))
    assert torch.allclose(z.pow(2).mean(0), torch.full((6,), r * r + 1, dtype=torch.float64), rtol=0.02)
    assert torch.allclose(z.pow(4).mean(0), torch.full((6,), r ** 4 + 6 * r * r + 3, dtype=torch.float64), rtol=0.04)
    if r >= 6.0:  # well separated: the per-dimension mean of each mode is +r / -r, each mode half the mass
        pos = torch.where(z > 0, z, torch.nan)
        neg = torch.where(z < 0, z, torch.nan)
        assert torch.allclose(pos.nanmean(0), torch.full((6,), r, dtype=torch.float64), atol=0.02)
        assert torch.allclose(neg.nanmean(0), torch.full((6,), -r, dtype=torch.float64), atol=0.02)
        assert torch.allclose((z > 0).double().mean(0), torch.full((6,), 0.5, dtype=torch.float64), atol=0.01)


def test_config_rejects_negative_r():
    with pytest.raises(ValueError):
        BinarizedVAEConfig(r=-0.5)


def test_composes_with_beta_and_capacity():
    x = load_split("mnist", "test", SAMPLE).x[:16].bernoulli(generator=torch.Generator().manual_seed(0))
    eps = torch.randn(16, 4)
    base = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=1.0))
    beta = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=1.0, beta=10.0))
    cap = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=1.0, capacity=10.0, gamma=10.0))
    beta.load_state_dict(base.state_dict())
    cap.load_state_dict(base.state_dict())  # this copies base's capacity buffer (0) too
    assert float(cap.capacity_now) == 0.0
    cap.set_capacity(10.0)
    base.eval(), beta.eval(), cap.eval()
    t, tb, tc = base.terms(x, eps=eps), beta.terms(x, eps=eps), cap.terms(x, eps=eps)
    assert torch.allclose(tb["loss"], t["recon"] + 10.0 * t["kl"], rtol=1e-5, atol=1e-3)
    assert torch.allclose(tc["loss"], t["recon"] + 10.0 * (t["kl"] - 10.0).abs(), rtol=1e-5, atol=1e-3)
    assert torch.allclose(tb["elbo"], t["elbo"]) and torch.allclose(tc["elbo"], t["elbo"])


def test_elbo_bounds_iwae_and_checkpoint_roundtrip(tmp_path):
    """Trained briefly on real digits: ELBO <= IWAE(k) under the mixture prior, and the model reloads."""
    torch.manual_seed(0)
    data = load_split("mnist", "train", SAMPLE).x[:1000]
    test = load_split("mnist", "test", SAMPLE).x[:100].bernoulli(generator=torch.Generator().manual_seed(0))
    model = BinarizedVAE(BinarizedVAEConfig(latent_dim=8, hidden=(64,), r=1.0))
    hist = train(model, data, TrainConfig(epochs=2, batch_size=100, progress=False))
    assert hist[-1]["loss"] < hist[0]["loss"]
    torch.manual_seed(1)
    with torch.no_grad():
        elbo = float(torch.stack([model.terms(test)["elbo"] for _ in range(30)]).mean())
    iwae = float(iwae_log_likelihood(model, test, k=100).mean())
    assert elbo <= iwae
    # the IWAE with k=1 is an unbiased single-sample estimate of the same ELBO (mixture prior, exact KL)
    torch.manual_seed(2)
    iwae1 = float(torch.stack([iwae_log_likelihood(model, test, k=1) for _ in range(30)]).mean())
    assert abs(iwae1 - elbo) < 1.0
    path = save_checkpoint(model, tmp_path / "bvae.pt")
    again = load_checkpoint(path)
    assert isinstance(again, BinarizedVAE) and again.config.r == 1.0
    mu_a, _ = model.encode(test)
    mu_b, _ = again.encode(test)
    assert torch.allclose(mu_a, mu_b)


# -- fidelity to the official code and to what the claims can decide (issue 11, items 7-10) -------------------
def _official_loss(model: BinarizedVAE, x, eps, beta: float, c_batch: float):
    """engine.py of zizhao-hu/BVAE: BCE and KL summed over the batch, then |KL - C| times beta, on the sum."""
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar, eps)
    bce = -model.log_px_given_z(x, model.decode(z)).sum()
    kl = -0.5 * torch.sum(1 + logvar - (mu.abs() - model.r) ** 2 - logvar.exp())
    return bce + beta * (kl - c_batch).abs()


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_fidelity_capacity_official_value_and_form():
    """The capacity-VAE applies the official C = 10 to the KL summed over a batch of 64: 10/64 nats per image.
    Our loss (mean over the batch) is the official loss / 64, in value and gradient, whatever the batch's KL."""
    from lmvae_core.papers.binarized.settings import OBJECTIVES

    cap = OBJECTIVES["capacity-VAE"]
    assert cap["capacity"] == pytest.approx(10.0 / 64) and cap["gamma"] == 10.0 and cap["capacity_scope"] == "batch"
    x = load_split("mnist", "test", SAMPLE).x[:64].bernoulli(generator=torch.Generator().manual_seed(0))
    eps = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    for c_batch in (10.0, 1e4):  # KL above C (the official setting), and C above the batch's KL
        torch.manual_seed(0)
        ours = BinarizedVAE(BinarizedVAEConfig(latent_dim=4, hidden=(32,), r=0.5, capacity=c_batch / 64, gamma=10.0,
                                               capacity_scope="batch"))
        loss = ours.terms(x, eps=eps)["loss"].mean()
        official = _official_loss(ours, x, eps, 10.0, c_batch) / 64
        assert loss.item() == pytest.approx(official.item(), rel=1e-5)
        for g, h in zip(_grads(ours, loss), _grads(ours, official)):
            assert torch.allclose(g, h, rtol=1e-4, atol=1e-6)
    # the per-image scope differs once images fall on both sides of C (here C per image = 10,000 / 64 = 156)
    kl = ours.terms(x, eps=eps)["kl"].detach()
    c_mid = float(kl.median())
    ours.set_capacity(c_mid)
    per_batch = ours.terms(x, eps=eps)["loss"].mean()
    ours.config.capacity_scope = "image"
    per_image = ours.terms(x, eps=eps)["loss"].mean()
    assert per_image.item() > per_batch.item() + 1e-3


def test_fidelity_official_capacity_trains_as_beta_vae():
    """With the official C (0.156 nats per image) the KL of any real batch is above C, so the capacity-VAE's
    gradient is the beta = 10 beta-VAE's: the official capacity-VAE is the beta-VAE plus a constant."""
    from lmvae_core.papers.binarized.settings import OBJECTIVES

    x = load_split("mnist", "test", SAMPLE).x[:64].bernoulli(generator=torch.Generator().manual_seed(0))
    eps = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    cap = BinarizedVAE(BinarizedVAEConfig(latent_dim=8, hidden=(32,), r=0.5, **OBJECTIVES["capacity-VAE"]))
    beta = BinarizedVAE(BinarizedVAEConfig(latent_dim=8, hidden=(32,), r=0.5, **OBJECTIVES["beta-VAE"]))
    beta.load_state_dict(cap.state_dict())
    tc, tb = cap.terms(x, eps=eps), beta.terms(x, eps=eps)
    assert tc["kl"].mean() > OBJECTIVES["capacity-VAE"]["capacity"]
    assert (tb["loss"].mean() - tc["loss"].mean()).item() == pytest.approx(10.0 * 10.0 / 64, rel=1e-4)
    for g, h in zip(_grads(cap, tc["loss"].mean()), _grads(beta, tb["loss"].mean())):
        assert torch.allclose(g, h, rtol=1e-4, atol=1e-6)


def test_fidelity_collapse_measure_is_invariant_to_the_shift():
    """The same posterior means, and their copy pushed out by r (m -> m + r sign(m), what the regulariser does to
    a mean): the folded count and the per-unit KL_r give the same answer for both; Burda's raw count does not."""
    from lmvae_core.models.binarized import fold_to_modes, unit_activity

    g = torch.Generator().manual_seed(0)
    n, r = 500, 0.5
    scales = torch.tensor([1.0, 0.5, 0.2, 0.05, 0.01, 0.003, 0.001, 0.0])  # 3 units above Var 0.01, 5 collapsed
    m = torch.randn(n, len(scales), generator=g, dtype=torch.float64) * scales + 1e-6
    logvar = torch.randn(n, len(scales), generator=g, dtype=torch.float64) * 0.1 - 1.0
    pushed = m + r * torch.sign(m)
    at0, atr = unit_activity(m, logvar, 0.0), unit_activity(pushed, logvar, r)
    assert at0["active_raw"] == at0["active_folded"] == 3  # at r = 0 the folded count is Burda's
    assert atr["active_folded"] == at0["active_folded"]
    assert torch.allclose(atr["folded_variance"], at0["variance"])
    assert torch.allclose(fold_to_modes(pushed, r), m)
    assert atr["active_kl"] == at0["active_kl"] and torch.allclose(atr["kl"], at0["kl"])
    assert atr["active_raw"] == len(scales) - 1  # the artefact: every unit whose sign varies reaches Var ~ r^2
    # an untrained r > 0 encoder's means sit near 0, inside the valley: the folded count gives them no activity
    valley = torch.randn(n, 4, generator=g, dtype=torch.float64) * 0.02
    assert unit_activity(valley, torch.zeros_like(valley), r)["active_folded"] == 0


def test_fidelity_collapse_regime_in_every_profile():
    """Every profile has a regime where units collapse at r = 0: latent 50 with a beta > 1 objective."""
    from lmvae_core.papers.binarized.settings import OBJECTIVES, SETTINGS

    for name, s in SETTINGS.items():
        assert s["collapse_latent"] >= 50, name
        assert any(OBJECTIVES[o]["beta"] > 1 for o in s["collapse_objectives"]), name
        assert 0.0 in s["collapse_rs"] and s["main_r"] in s["collapse_rs"], name
        if name != "paper-shape":  # scales the paper's seeds down (a size, common.paper_shape): CI, not claims
            assert s["seeds"] >= 3 and s["cl_seeds"] >= 3, name


def test_fidelity_sweep_trains_seeds_as_one_ensemble():
    """A sweep setting is 3 seeds trained as one stacked ensemble; each member is the run of its own seed."""
    from lmvae_core.experiments.common import setup
    from lmvae_core.training.ensemble import train_ensemble

    run = setup("03_binarized_regularization", "smoke", 4, "cpu", settings=exp_settings.SETTINGS, progress=False)
    run = run.with_settings(run.settings.replace(sweep_train=256, hidden=16, latent=3, batch=64))
    out = exp.fit_model(run, "mnist", "VAE", 0.5)
    assert out["seeds"] == [4, 5, 6] and len(out["members"]) == 3 and len(out["history"]) == 3
    x = load_split("mnist", "train", run.data(train_limit=256)).x
    epochs = run.settings["epochs"]  # the run counts what each member trained: steps of 64 rows, images seen
    assert out["steps"] == epochs * math.ceil(len(x) / 64) and out["images"] == epochs * len(x)
    cfg = exp.model_config(run.settings, "VAE", 0.5)
    alone = train_ensemble(lambda: BinarizedVAE(cfg), x, exp._tcfg(run), [5])[0]
    member = exp.rebuild(out, "cpu", 1)
    for (name, a), b in zip(member.named_parameters(), alone.parameters()):
        assert torch.allclose(a, b, atol=1e-5), name
    first = exp.rebuild(out, "cpu", 0)
    assert not torch.allclose(next(first.parameters()), next(member.parameters()))


def _rows(values: dict, epochs=40, n_train=60_000, seeds=3):
    """Synthetic sweep rows: values[(regime, objective, r)] -> per-seed value of every metric."""
    rows = []
    for (regime, objective, r), per_seed in values.items():
        keys = ("recon_error", "probe_accuracy", "fid", "iwae", "active_folded", "active_units", "pooled_bc",
                "minority_sign")
        seeds_ = {k: list(per_seed[:seeds]) for k in keys}
        rows.append({"regime": regime, "dataset": "mnist", "objective": objective, "r": r, "latent": 50,
                     "n_seeds": seeds, "epochs": epochs, "n_train": n_train, "seeds": seeds_,
                     "steps": epochs * math.ceil(n_train / 128), "images": epochs * n_train}
                    | {k: sum(v) / len(v) for k, v in seeds_.items()})
    return rows


OVER = [{"objective": "VAE", "ratio": 1.0, "ratio IQR low": 0.98, "ratio IQR high": 1.02, "ratio (first half)": 1.01,
         "blocks": 10, "steps/block": 10}]


def _judged(values, half_values=None, over=OVER, **kw):
    """The claims of synthetic rows, keyed by their text up to ' (', with half-budget values from half_values
    (the same rows at half the epochs) when given."""
    from lmvae_core.papers.binarized.claims import claims
    from lmvae_core.results.claims import with_half_budget

    sched = {k: kw.pop(k) for k in ("epochs", "n_train") if k in kw}
    out = claims(_rows(values, **sched), over, {}, [], "test", 0.5, **kw)
    if half_values is not None:
        half_sched = sched | {"epochs": sched.get("epochs", 40) // 2}
        out = with_half_budget(out, claims(_rows(half_values, **half_sched), [], {}, [], "test", 0.5, **kw))
    return {c.claim.split(" (")[0].split(",")[0].split(":")[0]: c for c in out}


CLEAR = {("main", "VAE", 0.0): [100.0, 101.0, 99.0], ("main", "VAE", 0.5): [90.0, 91.0, 89.5],
         ("collapse", "VAE", 0.0): [100.0, 101.0, 99.0], ("collapse", "VAE", 0.5): [90.0, 91.0, 89.5]}


def test_fidelity_claims_decide_with_intervals_and_half_budget():
    """A paper claim is decided only with the calibration met, a 95% interval over seeds that stays on one side
    of its criterion and a half-budget value that confirms it; every claim states its schedule (no floor share)."""
    from lmvae_core.results.claims import NOT_COMPARABLE, REPRODUCED

    recon = "Better reconstruction"
    c = _judged(CLEAR, CLEAR, calibrated=True)
    assert all(x.schedule is not None for x in c.values() if not x.claim.startswith("No computation"))
    assert all(x.schedule.min_fraction == 0.0 for x in c.values() if x.schedule is not None)
    assert c[recon].verdict == REPRODUCED and c[recon].ci[0] < c[recon].ours < c[recon].ci[1] < 0.98
    assert c[recon].half.ours == pytest.approx(c[recon].ours)
    assert c[recon].half.schedule.ours == c[recon].schedule.ours / 2  # the half run's own budget
    # no half-budget value: a paper claim is not decided
    assert _judged(CLEAR, calibrated=True)[recon].verdict == NOT_COMPARABLE
    # one seed of three on the other side: the interval spans the criterion
    noisy = dict(CLEAR) | {("main", "VAE", 0.5): [80.0, 100.0, 103.0]}
    n = _judged(noisy, CLEAR, calibrated=True)[recon]
    assert n.verdict == NOT_COMPARABLE and "interval" in n.row()["why"]
    # at half the budget r > 0 did not yet beat r = 0: still moving
    slow = dict(CLEAR) | {("main", "VAE", 0.5): [100.0, 101.0, 99.5]}
    m = _judged(CLEAR, slow, calibrated=True)[recon]
    assert m.verdict == NOT_COMPARABLE and "still moving" in m.row()["why"]
    assert _judged(CLEAR, CLEAR, calibrated=False)[recon].verdict == NOT_COMPARABLE


def test_fidelity_claims_kinds_where_and_equal_compute():
    """Every claim has its kind set (the abstract's claims are `paper` with where = Abstract; the bound, the
    likelihood cost and the continual average are `derived`), and every r > 0 against r = 0 comparison records
    both sides' steps and images, equal here by construction."""
    from lmvae_core.papers.binarized.claims import claims
    from lmvae_core.results.claims import DERIVED, PAPER

    replay = {r: [{"forgetting": f + s, "average": -100.0 - f + s, "images_per_task": 12_000, "epochs": 10,
                   "steps": 4690, "real_rows": 600_000} for s in range(3)] for r, f in ((0.0, 5.0), (0.5, 3.0))}
    bounds = [{"r": 0.5, "n": 10, "quadrature_violations": 0, "mc_violations_3se": 0}]
    out = claims(_rows(CLEAR), OVER, replay, bounds, "test", 0.5, calibrated=True, batch=128)
    kinds = {c.claim.split(" (")[0].split(":")[0]: c.kind for c in out}
    assert all(c.kind == PAPER and c.where == "Abstract" for c in out if c.kind == PAPER)
    assert [c.claim.startswith(("(derived", "(not claimed")) for c in out] == [c.kind == DERIVED for c in out]
    assert kinds["Symmetric per dimension"] == PAPER and kinds["No computation overhead"] == PAPER
    assert sum(c.kind == DERIVED for c in out) == 3 and len(out) == 11
    for c in out:
        if (c.kind == PAPER or "gain" in c.claim) and not math.isnan(c.ours):  # collapse: none here to prevent
            assert c.compute is not None and c.compute.equal, c.claim
    over = next(c for c in out if c.claim.startswith("No computation"))
    assert over.compute.steps == (100.0, 100.0) and over.compute.images == (12_800.0, 12_800.0)
    assert over.half.ours == 1.01 and over.verdict == "reproduced"  # its half value: the first half of the blocks
    forget = next(c for c in out if c.claim.startswith("Less forgetting"))
    assert forget.compute.steps == (3 * 4690.0, 3 * 4690.0)
    # unequal steps on one side (a run that stopped early) make the comparison not comparable
    short = [x | {"steps": x["steps"] // 2} if x["r"] == 0.5 else x for x in _rows(CLEAR)]
    recon = next(c for c in claims(short, OVER, {}, [], "test", 0.5, calibrated=True) if c.claim.startswith("Better"))
    assert not recon.compute.equal and "unequal compute" in recon.row()["why"]


def test_fidelity_symmetry_is_judged_against_r0():
    """'Symmetric per dimension' is the gain in minority-sign share over r = 0, paired by seed: an r > 0 model as
    symmetric as r = 0 (a plain VAE's prior is symmetric already) does not reproduce it; a clear gain does."""
    from lmvae_core.results.claims import PARTLY, NOT_REPRODUCED, REPRODUCED

    base = {("main", "VAE", 0.0): [0.46, 0.45, 0.47]}
    key = "Symmetric per dimension"
    same = base | {("main", "VAE", 0.5): [0.45, 0.44, 0.46]}  # the old rule (>= 0.4) called this reproduced
    c = _judged(same, same, calibrated=True)[key]
    assert c.ours == pytest.approx(-0.01) and c.rule.judge(c.ours) == NOT_REPRODUCED
    assert c.verdict == NOT_REPRODUCED and c.ci[1] < 0
    gain = base | {("main", "VAE", 0.5): [0.49, 0.48, 0.495]}
    assert _judged(gain, gain, calibrated=True)[key].verdict == REPRODUCED
    level = base | {("main", "VAE", 0.5): [0.465, 0.455, 0.475]}
    assert _judged(level, level, calibrated=True)[key].rule.judge(0.005) == PARTLY


def test_fidelity_two_modes_partly_is_a_gain_over_r0_only_below_five_ninths():
    """'Partly' for two modes is r = 0's bimodality coefficient, a weaker bound than 5/9 only where r = 0 sits below
    it; where r = 0 is past 5/9 already, there is no partly (an inverted bound would make 5/9 the only test)."""
    from lmvae_core.results.claims import NOT_REPRODUCED, PARTLY, REPRODUCED

    low = {("main", "VAE", 0.0): [0.30, 0.31, 0.32], ("main", "VAE", 0.5): [0.40, 0.41, 0.42]}
    c = _judged(low, low, calibrated=True)["Two symmetric modes"]
    assert c.rule.partly == pytest.approx(0.31) and c.rule.judge(c.ours) == PARTLY
    high = {("main", "VAE", 0.0): [0.70, 0.71, 0.72], ("main", "VAE", 0.5): [0.50, 0.51, 0.52]}
    c = _judged(high, high, calibrated=True)["Two symmetric modes"]
    assert c.rule.partly is None and c.rule.judge(c.ours) == NOT_REPRODUCED and c.rule.judge(0.6) == REPRODUCED


def test_fidelity_overhead_is_decided_only_where_its_timing_interval_is_on_one_side():
    """The timing's own noise decides: a median of 1.01 whose interval over the blocks reaches past 1.05 cannot say
    'no overhead' (committed runs on one machine read 0.96 to 1.12); a tight interval can."""
    from lmvae_core.results.claims import NOT_COMPARABLE, REPRODUCED

    noisy = [OVER[0] | {"ratio CI low": 0.95, "ratio CI high": 1.09}]
    c = _judged(CLEAR, CLEAR, over=noisy, calibrated=True)["No computation overhead"]
    assert c.ci == (0.95, 1.09) and c.verdict == NOT_COMPARABLE and "spans the criterion" in c.row()["why"]
    tight = [OVER[0] | {"ratio CI low": 0.99, "ratio CI high": 1.03}]
    assert _judged(CLEAR, CLEAR, over=tight, calibrated=True)["No computation overhead"].verdict == REPRODUCED


def test_fidelity_collapse_claim_needs_a_collapse_at_r0():
    """Where every unit is active at r = 0 (the old latent-20 sweep), the collapse claim has no measurement."""
    from lmvae_core.results.claims import NOT_COMPARABLE, REPRODUCED

    main = {("main", "VAE", 0.0): [1.0, 1.0, 1.0], ("main", "VAE", 0.5): [1.0, 1.0, 1.0]}
    every_unit = main | {("collapse", "VAE", 0.0): [50.0] * 3, ("collapse", "VAE", 0.5): [50.0] * 3}
    c = _judged(every_unit, every_unit, calibrated=True)["No posterior collapse"]
    assert c.verdict == NOT_COMPARABLE and "no unit collapses" in c.note
    dying = main | {("collapse", "VAE", 0.0): [10.0, 12.0, 11.0], ("collapse", "VAE", 0.5): [20.0, 21.0, 23.0]}
    c = _judged(dying, dying, calibrated=True)["No posterior collapse"]
    assert c.verdict == REPRODUCED and c.ours == pytest.approx(31 / 3) and c.compute.equal


def test_half_budget_halves_what_the_schedules_count_and_nothing_else():
    """half_budget halves each model's epochs in the sweep and per replay task (a one-epoch profile halves its
    training images instead); evaluation, seeds, data and the rest stay."""

    for name, s in exp_settings.SETTINGS.items():
        h = exp_settings.half_budget(s)
        changed = {k for k in s if h[k] != s[k]}
        if s["epochs"] >= 2:
            assert h["epochs"] * 2 == s["epochs"] and h["cl_epochs"] * 2 == s["cl_epochs"], name
            assert changed == {"epochs", "cl_epochs"}, name
        else:  # smoke: one epoch over a limited training set
            assert h["sweep_train"] * 2 == s["sweep_train"] and h["cl_train_limit"] * 2 == s["cl_train_limit"]
            assert changed == {"sweep_train", "cl_train_limit"}, name
    assert exp_settings.half_budget(exp_settings.SETTINGS["quick"]) | {"epochs": 10, "cl_epochs": 10} == exp_settings.SETTINGS["quick"]
    with pytest.raises(ValueError):
        exp_settings.half_budget(exp_settings.SETTINGS["quick"] | {"epochs": 1})  # one epoch over all images: nothing to halve


def test_fidelity_quick_profile_trains_full_data_with_seeds():
    """quick trains on full data with 3 seeds; its calibration VAE is its reference's own spec."""
    from lmvae_core.experiments.calibration import REFERENCES

    q = exp_settings.SETTINGS["quick"]
    assert q["sweep_train"] is None and q["cl_train_limit"] is None  # full MNIST: PAPER_TRAIN_IMAGES images
    assert exp.calibration_spec(q) == REFERENCES[q["cal_ref"]]
    assert q["seeds"] >= 3 and q["cl_seeds"] >= 3
    assert {0.0, q["main_r"]} <= set(q["rs"]) and {0.0, q["main_r"]} <= set(q["cl_rs"])


def test_fidelity_sweep_schedule_is_the_least_trained_dataset():
    """Fashion-MNIST's 16,825 offline images at MNIST's epochs are fewer images seen: the claim states those."""
    from lmvae_core.papers.binarized.claims import sweep_schedule

    rows = _rows({("main", "VAE", 0.0): [1.0] * 3}, epochs=10, n_train=60_000)
    assert sweep_schedule(rows).ours == 600_000
    rows += [r | {"dataset": "fashion", "n_train": 16_825} for r in rows]
    sched = sweep_schedule(rows)
    assert sched.ours == 168_250 and "fashion" in sched.unit


def test_train_all_is_what_the_later_sections_read(tmp_path, monkeypatch):
    """One grid trains the classifiers, the calibration VAE, the sweep and the replay runs (retrained under
    force); calibration, sweep and continual_all then read them and never train again."""
    from lmvae_core.experiments import calibration as cal_mod
    from lmvae_core.experiments.common import setup

    fid_mod = importlib.import_module("lmvae_core.training.classifier")
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path))
    run = setup("03_binarized_regularization", "smoke", 0, "cpu", settings=exp_settings.SETTINGS, progress=False)
    run = run.with_settings(run.settings.replace(
        datasets=("mnist",), objectives=("VAE",), rs=(0.0, 0.5), collapse_objectives=("beta-VAE",),
        collapse_rs=(0.0, 0.5), hidden=16, latent=3, sweep_train=240, seeds=2, eval_n=50, iwae_k=5, probe_n=100,
        fid_n=50, clf_n=300, cal_k=5, cal_test=50, cl_rs=(0.0,), cl_seeds=1, cl_train_limit=240, cl_eval_n=20,
        cl_k=5))
    run.force = True
    grid = binarized_grid.train_all(run)
    assert not grid.failures and len(grid.calls) == 1 + 1 + 2 * (4 + 1)  # the sweep and replay, also at half budget
    assert [c.name for c in sorted(grid.calls, key=lambda c: -c.weight)][0] == "feature_classifier"

    def trains(*a, **k):
        raise AssertionError("trained again after train_all")

    monkeypatch.setattr(cal_mod, "fit_joint_vae", trains)
    monkeypatch.setattr(fid_mod, "classifier_state", trains)
    monkeypatch.setattr(exp, "fit_model", trains)
    monkeypatch.setattr(rexp, "fit_continual", trains)
    assert math.isfinite(exp.calibration(run).log_likelihood)
    rows = exp.sweep(run)  # evaluates (again, under force) but trains nothing
    assert len(rows) == 4 and all(x["n_seeds"] == 2 for x in rows)
    assert list(rexp.continual_all(run)) == [0.0]
    half = run.with_settings(exp_settings.half_budget(run.settings))  # the half-budget runs come from the same grid
    half_rows = exp.sweep(half)
    assert [x["images"] * 2 for x in half_rows] == [x["images"] for x in rows]
    (res,) = rexp.continual_all(half)[0.0]
    assert res["real_rows"] * 2 == rexp.continual_all(run)[0.0][0]["real_rows"]


def test_overhead_times_both_models_through_autograd_and_the_fused_plain_beside(monkeypatch):
    """The claim's ratio is the regulariser's own cost: the plain VAE's steps take the autograd path, as the binarized
    VAE's must; the package's fused plain VAE is timed in the same rounds and reported as its own ratio."""
    from lmvae_core.experiments.common import setup
    from lmvae_core.models import fused_vae

    run = setup("03_binarized_regularization", "smoke", 0, "cpu", settings=exp_settings.SETTINGS, progress=False)
    run = run.with_settings(run.settings.replace(objectives=("VAE",), hidden=16, latent=3, sweep_train=256,
                                                 overhead_steps=2, overhead_rounds=2))
    paths, step = [], rexp.train_step

    def watched(loss, batch, opt):
        model = loss.__self__
        paths.append((type(model).__name__, fused_vae.applies(model, batch)))
        return step(loss, batch, opt)

    monkeypatch.setattr(rexp, "train_step", watched)
    (row,) = rexp.overhead(run)
    assert set(paths) == {("VAE", False), ("BinarizedVAE", False), ("VAE", True)}
    assert {"ratio", "ratio vs fused", "ms/step plain (fused)", "ratio (first half)"} <= set(row) and row["blocks"] == 2
    assert fused_vae.applies(VAE(hidden=(16,), latent_dim=2), torch.rand(4, 1, 28, 28))  # restored
