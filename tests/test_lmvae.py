"""L-MVAE: Dirichlet MELBO weights, freezing, assignment, growth, selection, save/load."""
import copy

import pytest
import torch

from lmvae_core.continual import Budget, LMVAELearner, TaskData
from lmvae_core.continual.lmvae import begin_task, decide, probe_images, split_probe
from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.models.lmvae import LMVAE, LMVAEConfig
from lmvae_core.models.vae import VAE, VAEConfig
from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint
from lmvae_core.training.loop import TrainConfig, train

SAMPLE = DataConfig(source="sample")
EXPERT = VAEConfig(latent_dim=8, hidden=(64,))
FAST = TrainConfig(epochs=3, batch_size=64, progress=False)


def images(name, split="train", n=600):
    return load_split(name, split, SAMPLE).x[:n]


@pytest.fixture(scope="module")
def domain_experts():
    """One small VAE trained on MNIST and one on Fashion-MNIST (real sample images)."""
    torch.manual_seed(0)
    out = {}
    for name in ("mnist", "fashion"):
        vae = VAE(EXPERT)
        train(vae, images(name, n=1000), FAST)
        out[name] = vae
    return out


def fit_task(model: LMVAE, x, name, cfg: TrainConfig) -> dict:
    """One task through the L-MVAE learner, with the driver's real batches."""
    task = TaskData(len(model.task_names), name, x, Budget(cfg.epochs, cfg.batch_size, cfg.binarize))
    return LMVAELearner(model=model, lr=cfg.lr).fit_task(task)


def model_with(experts, **cfg):
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=len(experts), **cfg))
    for k, e in enumerate(experts):
        model.experts.experts[k].load_state_dict(e.state_dict())
    return model


def test_dirichlet_weights_zero_for_frozen_experts():
    torch.manual_seed(0)
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=4))
    model.assign(1, task=0, reference_error=1.0)
    model.assign(3, task=1, reference_error=1.0)
    draws = torch.stack([model.mixing_weights() for _ in range(500)])
    assert torch.all(draws[:, [1, 3]] == 0)
    assert torch.allclose(draws.sum(1), torch.ones(500))
    # fresh draws every step, symmetric over the trainable experts
    assert draws[:, 0].std() > 0.1
    assert abs(float(draws[:, 0].mean()) - 0.5) < 0.1
    # the MELBO sends no gradient to frozen experts
    loss, _ = model.loss(images("mnist", n=32))
    loss.backward()
    assert all(g is None for k in (1, 3) for g in model.experts.expert_grads(k).values())
    assert any(g is not None and g.abs().sum() > 0 for g in model.experts.expert_grads(0).values())


def test_frozen_expert_unchanged_while_later_tasks_train():
    torch.manual_seed(1)
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=2, reuse_threshold=None, probe_size=128))
    cfg = TrainConfig(epochs=1, batch_size=64, progress=False)
    d0 = fit_task(model, images("mnist", n=256), "mnist", cfg)
    frozen = d0["expert"]
    before = copy.deepcopy(model.experts.experts[frozen].state_dict())
    other = 1 - frozen
    other_before = copy.deepcopy(model.experts.experts[other].state_dict())
    d1 = fit_task(model, images("fashion", n=256), "fashion", cfg)
    assert d1["action"] == "train" and d1["expert"] == other
    after = model.experts.experts[frozen].state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert any(not torch.equal(other_before[n], model.experts.experts[other].state_dict()[n]) for n in other_before)
    assert not any(p.requires_grad for p in model.experts.experts[frozen].parameters())


def test_assignment_picks_best_fitting_trainable_expert(domain_experts):
    torch.manual_seed(2)
    fresh = VAE(EXPERT)
    # expert 1 knows MNIST, experts 0 and 2 do not: training zero steps on MNIST must assign expert 1
    model = model_with([fresh, domain_experts["mnist"], domain_experts["fashion"]], probe_size=128)
    x = images("mnist")
    d = fit_task(model, x, "mnist", TrainConfig(epochs=0, progress=False))
    probe = probe_images(model, x, seed=1000)
    with torch.no_grad():
        errors = [float(model.experts.experts[k].reconstruction_error(probe).mean()) for k in range(3)]
    assert d["expert"] == 1 == min(range(3), key=errors.__getitem__)
    assert model.experts.is_frozen(1) and not model.experts.is_frozen(0) and not model.experts.is_frozen(2)
    assert float(model.reference_error[1]) == pytest.approx(errors[1], rel=1e-5)
    # an already-frozen expert is never assigned again, even if it fits best
    model.config.reuse_threshold = None  # no reuse: the task must be trained
    d2 = fit_task(model, x, "mnist-again", TrainConfig(epochs=0, progress=False))
    assert d2["action"] == "train" and d2["expert"] in (0, 2)


@pytest.mark.parametrize("rule", ["ratio", "probe"])
def test_growth_exactly_when_criterion_says(domain_experts, rule):
    x_new = images("fashion")
    base = model_with([domain_experts["mnist"]], probe_size=128, reuse_rule=rule, probe_epochs=6.5)  # 48 steps
    base.assign(0, task=0, reference_error=float(base.expert_errors(probe_images(base, images("mnist"), 7))[0]))
    base.task_names.append("mnist")
    base.task_expert.append(0)
    probe = probe_images(base, x_new, seed=1000 + 1)
    err = float(base.experts.experts[0].reconstruction_error(probe).mean())
    zero = TrainConfig(epochs=0, progress=False)
    first = fit_task(copy.deepcopy(base), x_new, "fashion", zero)  # the score this rule gives, at threshold 0.1
    reference = float(base.reference_error[0]) if rule == "ratio" else first["probe_error"]
    ratio = err / reference
    assert first["ratios"][0] == pytest.approx(ratio, rel=1e-5)
    assert ratio > 1.2  # Fashion is not MNIST to an MNIST expert, by either rule
    for threshold, expect_reuse in ((ratio - 1 - 0.05, False), (ratio - 1 + 0.05, True)):
        m = copy.deepcopy(base)
        m.config.reuse_threshold = threshold
        d = fit_task(m, x_new, "fashion", zero)
        assert d["ratios"][0] == pytest.approx(ratio, rel=1e-5)  # the probe is seeded: the same score again
        assert d["probe_steps"] == (48 if rule == "probe" else 0)
        if expect_reuse:
            assert d["action"] == "reuse" and len(m) == 1 and d["expert"] == 0 and d["steps"] == 0
        else:
            assert d["action"] == "grow" and d["added"] and len(m) == 2 and d["expert"] == 1
    # a new task with a trainable expert left trains it and adds nothing
    m = copy.deepcopy(base)
    m.add_expert()
    m.config.reuse_threshold = None
    d = fit_task(m, x_new, "fashion", zero)
    assert d["action"] == "train" and not d["added"] and len(m) == 2 and d["probe_steps"] == 0


def test_probe_leaves_the_global_random_state_alone(domain_experts):
    model = model_with([domain_experts["mnist"]], probe_epochs=0.3)
    model.assign(0, task=0, reference_error=1.0)
    torch.manual_seed(11)
    decide(model, *split_probe(model, images("fashion"), 3))
    after_probe = torch.rand(3)
    torch.manual_seed(11)
    assert torch.equal(after_probe, torch.rand(3))


@pytest.fixture(scope="module")
def mnist_kmnist_experts():
    """Experts trained 80 steps on MNIST and on KMNIST (real sample images)."""
    torch.manual_seed(4)
    out = {}
    for name in ("mnist", "kmnist"):
        vae = VAE(EXPERT)
        train(vae, images(name, n=1000), TrainConfig(epochs=5, batch_size=64, progress=False))
        out[name] = vae
    return out


def _decide(expert: VAE, own: str, new: str, **cfg) -> dict:
    """The decision of a one-expert L-MVAE (its expert trained on `own`) for a new task of domain `new`."""
    model = model_with([expert], probe_size=128, **cfg)
    model.assign(0, 0, float(model.expert_errors(probe_images(model, images(own), 1000))[0]))
    model.task_names.append(own)
    model.task_expert.append(0)
    return begin_task(model, images(new, n=1000), new)[0]


def test_fidelity_growth_rule_symmetric(mnist_kmnist_experts):
    """KMNIST is the more complex domain: its expert reconstructs MNIST better than KMNIST. The old ratio rule
    (error on the new task / error on the own task) therefore reuses the KMNIST expert for MNIST even at
    threshold 0, although an MNIST expert does far better on MNIST. The probe rule grows in both orders and
    reuses for a repeat."""
    ex = mnist_kmnist_experts
    test = {n: images(n, "test", 300) for n in ex}
    with torch.no_grad():
        err = {(e, d): float(ex[e].reconstruction_error(test[d]).mean()) for e in ex for d in ex}
    # ground truth: each domain's own expert is clearly better on it, so a new domain needs its own expert
    assert err[("mnist", "mnist")] < 0.9 * err[("kmnist", "mnist")]
    assert err[("kmnist", "kmnist")] < 0.9 * err[("mnist", "kmnist")]
    assert err[("kmnist", "mnist")] < err[("kmnist", "kmnist")]  # the simpler domain is easier for the expert
    old = _decide(ex["kmnist"], "kmnist", "mnist", reuse_rule="ratio", reuse_threshold=0.0)
    assert old["action"] == "reuse" and old["ratios"][0] < 1.0  # the asymmetry of the old rule
    for own, new in (("kmnist", "mnist"), ("mnist", "kmnist")):
        d = _decide(ex[own], own, new, probe_epochs=5.9, reuse_threshold=0.1)
        assert d["rule"] == "probe" and d["action"] == "grow", (own, new, d["ratios"], d["probe_error"])
        again = _decide(ex[own], own, own, probe_epochs=5.9, reuse_threshold=0.1)
        assert again["action"] == "reuse", (own, again["ratios"], again["probe_error"])


def test_fidelity_paper_likelihood_matches_official_loss():
    """The official loss is sum (x - mean)^2 + KL: -log p(x|z) must be that squared error up to a constant,
    i.e. a Gaussian of variance 1/2 (std 0.1 weighted the reconstruction 50x more)."""
    from lmvae_core.papers.lmvae.experiments import expert_config
    from lmvae_core.papers.lmvae.settings import SETTINGS
    from lmvae_core.models.likelihoods import log_likelihood

    cfg = expert_config(SETTINGS["paper"])
    assert cfg.likelihood == "gaussian"
    torch.manual_seed(5)
    x = torch.rand(6, 3, 32, 32)
    outs = [torch.randn(6, 3, 32, 32) * s for s in (0.5, 1.0, 3.0)]
    const = [log_likelihood("gaussian", x, o, cfg.gaussian_std) + (x - torch.sigmoid(o)).pow(2).flatten(1).sum(1)
             for o in outs]
    for c in const[1:]:
        assert torch.allclose(c, const[0], atol=1e-3)


def test_fidelity_selected_likelihood_redrawn(domain_experts):
    """Two identical experts: the best of their estimates per image with one IWAE draw is biased up (the max of
    two noisy estimates); re-drawn, it scores as one expert does. The uniform mixture lies within log K below
    the same-draw best, and at or above the mean of the two estimates."""
    model = model_with([domain_experts["mnist"], domain_experts["mnist"]])
    model.assign(0, 0, 1.0)
    model.assign(1, 1, 1.0)
    x = torch.bernoulli(images("mnist", "test", 400))
    torch.manual_seed(6)
    r = model.likelihood_report(x, k=1)
    single = model.log_likelihood(x, 1, torch.zeros(len(x), dtype=torch.long))

    def mean_se(d):  # paired over images: the Monte Carlo noise of a mean difference
        return float(d.mean()), float(d.std()) / len(d) ** 0.5

    optimism, se = mean_se(r["best (same draw)"] - r["best (re-drawn)"])
    assert optimism > 5 * se and optimism > 1.0
    redrawn, se = mean_se(r["best (re-drawn)"] - single)
    assert abs(redrawn) < 4 * se
    assert torch.all(r["uniform mixture"] <= r["best (same draw)"] + 1e-4)
    assert torch.all(r["uniform mixture"] >= r["best (same draw)"] - torch.log(torch.tensor(2.0)) - 1e-4)
    # the selected expert's estimate is its own draw: the same expert scored again gives the same mean
    selected, se = mean_se(r["selected"] - single)
    assert abs(selected) < 4 * se


def test_fidelity_likelihood_cost_of_selection(domain_experts):
    """MNIST and Fashion experts: selection by reconstruction picks the best expert for nearly every image, so
    its cost against the re-drawn best expert is small and the uniform mixture is within log 2 of it."""
    model = model_with([domain_experts["fashion"], domain_experts["mnist"]])
    model.assign(0, 0, 1.0)
    model.assign(1, 1, 1.0)
    x = torch.bernoulli(torch.cat([images("mnist", "test", 150), images("fashion", "test", 150)]))
    torch.manual_seed(7)
    r = model.likelihood_report(x, k=20)
    assert float((r["choice"] == r["best"]).float().mean()) > 0.8
    cost = float((r["best (re-drawn)"] - r["selected"]).mean())
    assert -1.0 < cost < 3.0
    gap = float((r["selected"] - r["uniform mixture"]).mean())
    assert 0 < gap < float(torch.log(torch.tensor(2.0))) + 0.5


def test_selection_picks_the_domain_expert(domain_experts):
    model = model_with([domain_experts["fashion"], domain_experts["mnist"]])
    model.assign(0, 0, 1.0)
    model.assign(1, 1, 1.0)
    # constructed case: expert 1 was trained on MNIST only, expert 0 on Fashion-MNIST only; the test images
    # of each domain must go to the expert that learned it (mostly: the experts are small and briefly trained)
    for criterion, floor in (("recon", 0.6), ("elbo", 0.65)):
        on_mnist = model.select(images("mnist", "test", 300), criterion)
        on_fashion = model.select(images("fashion", "test", 300), criterion)
        assert (on_mnist == 1).float().mean() > 0.9
        assert (on_fashion == 0).float().mean() > floor
    # inference runs only the chosen expert: outputs equal that expert's own
    x = torch.cat([images("mnist", "test", 20), images("fashion", "test", 20)])
    choice = model.select(x)
    rec = model.reconstruct(x, choice)
    for i in range(len(x)):
        own = model.experts.experts[int(choice[i])].reconstruct(x[i:i + 1])
        assert torch.allclose(rec[i:i + 1], own, atol=1e-6)


def test_save_and_reload_grown_mixture(tmp_path):
    torch.manual_seed(3)
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=1, reuse_threshold=None, probe_size=64))
    cfg = TrainConfig(epochs=1, batch_size=64, progress=False)
    fit_task(model, images("mnist", n=200), "mnist", cfg)
    d = fit_task(model, images("fashion", n=200), "fashion", cfg)
    assert d["added"] and len(model) == 2
    model.add_expert()  # one still trainable
    path = save_checkpoint(model, tmp_path / "lmvae.pt")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LMVAE) and len(loaded) == 3
    assert loaded.task_names == model.task_names and loaded.task_expert == model.task_expert
    assert torch.equal(loaded.expert_task, model.expert_task)
    assert loaded.trainable == model.trainable == [2]
    assert [p.requires_grad for p in loaded.parameters()] == [p.requires_grad for p in model.parameters()]
    model.eval()
    x = torch.cat([images("mnist", "test", 50), images("fashion", "test", 50)])
    assert torch.equal(loaded.select(x), model.select(x))
    assert torch.equal(loaded.reconstruct(x), model.reconstruct(x))
    eps = torch.randn(len(x), EXPERT.latent_dim)
    for k in range(3):
        a = loaded.experts.experts[k].terms(x, eps)
        b = model.experts.experts[k].terms(x, eps)
        assert torch.equal(a["elbo"], b["elbo"])
    assert torch.equal(loaded.sample_per_expert(4, seed=5), model.sample_per_expert(4, seed=5))


SWEEP = [{"margin": 0.1, "experts added by the repeat": 0, "experts": 3}]
TURNS = [{"rule": "probe", "order": "a -> b -> a", "task 2 action": "grow"},
         {"rule": "probe", "order": "b -> a -> b", "task 2 action": "grow"},
         {"rule": "ratio", "order": "b -> a -> b", "task 2 action": "reuse"}]
COST = [{"pair": p, "domain": d, "selection cost (nats)": c, "selected - mixture (nats)": 0.6, "selection accuracy": a}
        for p, c, per in (("main", 0.1, {"mnist": 1.0, "fashion": 0.99}), ("hard", 0.4, {"mnist": 0.6, "kmnist": 0.99}))
        for d, a in [*per.items(), ("all domains", sum(per.values()) / 2)]]
TIMING = {"ratio": 0.4, "experts": 2, "k": 10, "ratio range": "0.380-0.450", "rounds": 7}  # as inference_time returns
# lmvae.spent() of a main sequence: L-MVAE's experts train what the baselines train, its probe on top
SPENT = {"L-MVAE": {"steps": 4808.0, "images": 614_600.0, "probe steps": 1036.0, "probe images": 132_608.0},
         "fine-tuned VAE": {"steps": 4808.0, "images": 614_600.0}, "joint VAE": {"steps": 4808.0, "images": 614_600.0}}


def seed_rows(per_seed: dict[int, dict]) -> list[dict]:
    """seed_rows() of the main sequence from {seed: {'lm_f', 'ft_f', 'lm_ll', 'joint_ll', 'acc'}}."""
    from lmvae_core.papers.lmvae.experiments import METRICS

    rows = []
    for seed, v in per_seed.items():
        nan = float("nan")
        rows += [{"seed": seed, "method": "L-MVAE", METRICS[0]: 20.0, METRICS[1]: 0.0, METRICS[2]: v["lm_ll"],
                  METRICS[3]: v["lm_f"], METRICS[4]: v["acc"]},
                 {"seed": seed, "method": "fine-tuned VAE", METRICS[0]: 30.0, METRICS[1]: 5.0,
                  METRICS[2]: v["lm_ll"] - 30.0, METRICS[3]: v["ft_f"], METRICS[4]: nan},
                 {"seed": seed, "method": "joint VAE", METRICS[0]: 19.0, METRICS[1]: nan, METRICS[2]: v["joint_ll"],
                  METRICS[3]: nan, METRICS[4]: nan}]
    return rows


def lmvae_claims_for(rows, profile, ll, images=None, cost=COST, spent=SPENT, half=True):
    """Notebook 01's claims from fixed measurements; half=True: with the same values as their half-budget values
    (a value that has stopped moving), so that the paper claims can be decided."""
    from lmvae_core.papers.lmvae import claims as lmvae_claims
    from lmvae_core.experiments.calibration import Calibration
    from lmvae_core.papers.lmvae.settings import SETTINGS
    from lmvae_core.results.claims import with_half_budget

    s = SETTINGS[profile]
    images = images or {k: float(e * n) for k, e, n in (("main", s["epochs"], s["train_limit"] or 60_000),
                                                        ("growth", s["growth_epochs"], s["growth_train"] or 60_000),
                                                        ("hard", s["hard_epochs"], s["hard_train"] or 60_000))}
    cal = Calibration("m", "mnist", profile, 10, ll, -100.0, "test")
    claims = lmvae_claims.claims(rows, SWEEP, TURNS, cost, TIMING, cal, s, profile, images, spent)
    return with_half_budget(claims, claims) if half else claims


def by_claim(claims):
    return {c.claim.split(" (")[0]: c for c in claims}


THREE_SEEDS = {0: dict(lm_f=0.0, ft_f=80.0, lm_ll=-170.0, joint_ll=-169.5, acc=0.99),
               1: dict(lm_f=0.1, ft_f=75.0, lm_ll=-171.0, joint_ll=-170.4, acc=0.995),
               2: dict(lm_f=-0.1, ft_f=85.0, lm_ll=-169.5, joint_ll=-169.1, acc=0.985)}


def test_lmvae_claims_say_what_they_are():
    """Every claim of notebook 01 has a kind: no forgetting is true by construction (sanity), the selection cost
    is the project's own measure (derived), the rest are the paper's statements, each saying where."""
    from lmvae_core.results.claims import DERIVED, KINDS, PAPER, SANITY

    claims = lmvae_claims_for(seed_rows(THREE_SEEDS), "quick", -99.0)
    assert all(c.kind in KINDS for c in claims)
    kinds = {c.claim.split(" (")[0]: c.kind for c in claims}
    assert kinds.pop("No forgetting: one frozen expert per task") == SANITY
    assert kinds.pop("Selecting one expert loses little log-likelihood, hard pair mnist / kmnist") == DERIVED
    assert set(kinds.values()) == {PAPER}
    assert all(c.where for c in claims if c.kind == PAPER)
    timing = next(c for c in claims if c.claim.startswith("Inference costs one expert"))
    assert timing.where.startswith("Abstract")


def test_lmvae_selection_is_judged_on_both_pairs():
    """Selection has a claim on the easy pair (mean over seeds) and one on the hard pair (its pooled share routed to
    the domain's own expert, per domain in the note): a weak domain of the hard pair shows in its verdict."""
    claims = by_claim(lmvae_claims_for(seed_rows(THREE_SEEDS), "quick", -99.0))
    easy = claims["The right expert is selected for each input, easy pair mnist / fashion"]
    hard = claims["The right expert is selected for each input, hard pair mnist / kmnist"]
    assert easy.ours == pytest.approx(0.99) and easy.verdict == "reproduced"
    assert hard.ours == pytest.approx(0.795) and hard.verdict == "not reproduced"
    assert "mnist 0.600" in hard.note and "kmnist 0.990" in hard.note


def test_fidelity_lmvae_claims_know_their_schedule():
    """Every claim of notebook 01 states its schedule against the paper's 100 epochs of 60,000 images per task and
    requires no share of it (the half-budget rule decides instead): a paper claim without its half-budget value is
    'not comparable', the other kinds decide; a missed calibration makes the model-quality claims undecided."""
    from lmvae_core.results.claims import NO_HALF, PAPER

    rows = seed_rows(THREE_SEEDS)
    bare = lmvae_claims_for(rows, "smoke", -99.0, half=False)
    for c in bare:
        assert c.schedule is not None and c.schedule.paper == 100 * 60_000 and c.schedule.min_fraction == 0.0
        if c.kind == PAPER:
            assert c.verdict == "not comparable" and NO_HALF in c._undecided(), c.claim
        else:
            assert c.verdict != "not comparable", (c.claim, c._undecided())
    paper = lmvae_claims_for(rows, "paper", -99.0)
    assert all(c.verdict != "not comparable" for c in paper), [(c.claim, c._undecided()) for c in paper]
    assert by_claim(paper)["A new domain gets an expert whichever domain came first"].verdict == "reproduced"
    # calibration missed by 10 nats: every model-quality claim is undecided
    missed = lmvae_claims_for(rows, "paper", -110.0)
    assert all(c.verdict == "not comparable" for c in missed if not c.claim.startswith("Inference"))
    assert by_claim(missed)["Inference costs one expert"].verdict == "reproduced"


def test_lmvae_verdict_waits_for_a_value_that_stopped_moving():
    """The half-budget run's claims are matched by text: where the forgetting gap at half the budget is on the
    other side of the criterion, the full verdict is 'still moving'; where it agrees, the verdict stands."""
    from lmvae_core.results.claims import STILL_MOVING, with_half_budget

    full = lmvae_claims_for(seed_rows(THREE_SEEDS), "quick", -99.0, half=False)
    small = {s: dict(v, ft_f=v["lm_f"] + 2.0) for s, v in THREE_SEEDS.items()}  # forgets little at half budget
    half = lmvae_claims_for(seed_rows(small), "quick", -99.0, half=False)
    joined = by_claim(with_half_budget(full, half))
    gap = joined["L-MVAE forgets far less than a fine-tuned VAE"]
    assert gap.half.ours == pytest.approx(-2.0) and gap.verdict == "not comparable"
    assert STILL_MOVING in gap._undecided()
    assert joined["L-MVAE approaches a jointly trained VAE"].verdict == "reproduced"


def test_lmvae_comparisons_record_both_sides_compute():
    """Both comparisons of L-MVAE record both sides' steps and real images: the experts train what the baseline
    trains, and the probe of the reuse test comes on top, said in why_unequal; without a probe they are equal."""
    claims = by_claim(lmvae_claims_for(seed_rows(THREE_SEEDS), "quick", -99.0))
    for name, other in (("L-MVAE forgets far less than a fine-tuned VAE", "fine-tuned VAE"),
                        ("L-MVAE approaches a jointly trained VAE", "joint VAE")):
        c = claims[name].compute
        assert c.sides == ("L-MVAE", other)
        assert c.steps == (4808.0 + 1036.0, 4808.0) and c.images == (614_600.0 + 132_608.0, 614_600.0)
        assert not c.equal and "probe" in c.why_unequal and "train 4808 steps" in c.why_unequal
        assert claims[name].verdict == "reproduced"
    no_probe = {m: {k: v for k, v in c.items() if not k.startswith("probe")} for m, c in SPENT.items()}
    c = by_claim(lmvae_claims_for(seed_rows(THREE_SEEDS), "quick", -99.0, spent=no_probe))[
        "L-MVAE approaches a jointly trained VAE"].compute
    assert c.equal and c.why_unequal == ""
    # a baseline that trained a third less: unequal, and the probe does not explain it
    short = dict(SPENT, **{"joint VAE": {"steps": 3200.0, "images": 409_600.0}})
    joint = by_claim(lmvae_claims_for(seed_rows(THREE_SEEDS), "quick", -99.0, spent=short))[
        "L-MVAE approaches a jointly trained VAE"]
    assert not joint.compute.equal and joint.compute.why_unequal == ""
    assert joint.verdict == "not comparable" and "unequal compute" in joint._undecided()


def test_fidelity_lmvae_claims_decide_with_intervals_over_seeds():
    """The claims on the main sequence are means over its seeds with a 95% interval: paired by seed for a
    difference between methods, Student t otherwise. One seed cannot decide them; three consistent seeds can,
    and seeds that disagree about the criterion cannot."""
    from lmvae_core.metrics.significance import mean_ci, paired_difference

    three = by_claim(lmvae_claims_for(seed_rows(THREE_SEEDS), "paper", -99.0))
    gap = three["L-MVAE forgets far less than a fine-tuned VAE"]
    want = paired_difference([0.0, 0.1, -0.1], [80.0, 75.0, 85.0])
    assert gap.ours == pytest.approx(want.mean) and gap.ci == pytest.approx((want.lo, want.hi))
    assert gap.verdict == "reproduced"
    joint = three["L-MVAE approaches a jointly trained VAE"]
    want = paired_difference([-170.0, -171.0, -169.5], [-169.5, -170.4, -169.1])
    assert joint.ci == pytest.approx((want.lo, want.hi)) and joint.verdict == "reproduced"
    easy = next(k for k in three if k.startswith("The right expert is selected for each input, easy pair"))
    sel = three[easy]
    assert sel.ci == pytest.approx((mean_ci([0.99, 0.995, 0.985]).lo, mean_ci([0.99, 0.995, 0.985]).hi))
    for name in ("No forgetting: one frozen expert per task", "L-MVAE forgets far less than a fine-tuned VAE",
                 "L-MVAE approaches a jointly trained VAE", easy):
        lo, hi = three[name].ci
        assert lo < three[name].ours < hi or lo == hi == three[name].ours, name
    # one seed: the same numbers, but no interval, so the verdict waits for more seeds
    one = by_claim(lmvae_claims_for(seed_rows({0: THREE_SEEDS[0]}), "paper", -99.0))
    assert one["L-MVAE forgets far less than a fine-tuned VAE"].verdict == "not comparable"
    assert "one seed" in one["L-MVAE forgets far less than a fine-tuned VAE"]._undecided()
    # seeds on both sides of the joint claim's criterion (-2 nats): the interval spans it
    split = {s: dict(v, joint_ll=v["lm_ll"] + g) for (s, v), g in zip(THREE_SEEDS.items(), (0.5, 6.0, 1.0))}
    spans = by_claim(lmvae_claims_for(seed_rows(split), "paper", -99.0))["L-MVAE approaches a jointly trained VAE"]
    assert spans.verdict == "not comparable" and "spans the criterion" in spans._undecided()


def test_lmvae_quick_profile_judges_its_claims():
    """Quick: all training images, the calibration trained exactly as one task of the profile (same epochs, images,
    batch and network as the experts) and on its reference's own schedule (10 epochs), and three seeds for the
    claims that compare methods."""
    from lmvae_core.papers.lmvae.settings import SETTINGS

    for profile in ("quick", "paper"):
        s = SETTINGS[profile]
        assert s["n_seeds"] >= 3
    q = SETTINGS["quick"]
    cal = q["calibration"]
    assert q["train_limit"] is None and cal.train_limit is None and cal.test_limit is None
    assert (cal.epochs, cal.batch_size, cal.hidden, cal.latent) == (q["epochs"], q["batch"], (q["hidden"],),
                                                                    q["latent"])
    assert q["calibration_reference"] == "mnist_784-256-20_10ep" and cal.epochs == 10


def test_lmvae_half_budget_halves_the_epochs_the_schedules_count_and_nothing_else():
    """half_budget() halves the epochs per task of the main sequence, the growth runs and the hard pair (what the
    claims' schedules count), exactly in quick (even epochs), and leaves data, networks, seeds and evaluation alone;
    a profile of one epoch keeps it."""
    from lmvae_core.papers.lmvae.settings import BUDGET_KEYS, SETTINGS, half_budget

    q = SETTINGS["quick"]
    h = half_budget(q)
    assert {k: h[k] for k in BUDGET_KEYS} == {k: q[k] // 2 for k in BUDGET_KEYS}
    assert all(q[k] % 2 == 0 for k in BUDGET_KEYS)
    assert {k: v for k, v in h.items() if k not in BUDGET_KEYS} == {k: v for k, v in q.items() if k not in BUDGET_KEYS}
    assert q["epochs"] == 10 and h["epochs"] == 5  # the settings themselves are not changed
    smoke = half_budget(SETTINGS["smoke"])
    assert all(smoke[k] == 1 for k in BUDGET_KEYS)


def test_lmvae_main_sequence_runs_once_per_seed(tmp_path, monkeypatch):
    """The main sequence and its baselines train once per seed (each cached on its own); the per-seed rows pair
    the methods by seed, and the summary gives each metric's mean and interval over the seeds."""
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    from lmvae_core.papers.lmvae import experiments as exp, settings as exp_settings
    from lmvae_core.experiments.common import Run
    from lmvae_core.results.writers import Outputs

    s = exp_settings.SETTINGS["smoke"] | dict(train_limit=300, eval_n=50, n_seeds=3, probe=32)
    run = Run("01_lmvae", "smoke", 5, torch.device("cpu"), None, Outputs(tmp_path / "out"), progress=False,
              settings=s)
    main = exp.main_sequence(run)
    assert main["seeds"] == [5, 6, 7] and [r["seed"] for r in main["runs"]] == [5, 6, 7]
    assert len(list((tmp_path / "cache" / "lmvae").glob("*.pt"))) == 3
    assert len(list((tmp_path / "cache" / "lmvae_finetune").glob("*.pt"))) == 3
    assert len(list((tmp_path / "cache" / "lmvae_joint").glob("*.pt"))) == 3
    finals = [r["matrices"]["iwae"]["fine-tuned VAE"].average() for r in main["runs"]]
    assert len(set(finals)) == 3  # different seeds, different models
    rows = exp.seed_rows(run, main)
    assert exp.per_seed(rows, "fine-tuned VAE", exp.METRICS[2]) == pytest.approx(finals)
    summary = {r["method"]: r for r in exp.summary_rows(rows)}
    assert summary["fine-tuned VAE"]["seeds"] == 3
    assert summary["fine-tuned VAE"][exp.METRICS[2]] == pytest.approx(sum(finals) / 3)
    assert summary["fine-tuned VAE"][f"{exp.METRICS[2]} 95% CI"] != "n/a"
    # the schedules count the images the run really trains on (epochs x the smallest task's images)
    from lmvae_core.papers.lmvae import claims as lmvae_claims

    images = lmvae_claims.schedules(run)
    assert images["main"] == s["epochs"] * 300
    assert 0 < images["growth"] <= s["growth_epochs"] * s["growth_train"]
    assert 0 < images["hard"] <= s["hard_epochs"] * s["hard_train"]
    # the training each side cost, counted by the stream driver: the same real images; steps differ by rounding
    # (one partial batch per task and epoch), and L-MVAE's probe is counted apart
    spent = exp.spent(main)
    assert spent["fine-tuned VAE"] == {"steps": 6.0, "images": 600.0}  # 2 tasks x ceil(300 / 128) steps
    assert spent["joint VAE"] == {"steps": 5.0, "images": 600.0}  # ceil(600 / 128): the union at once
    trained = [sum(d["action"] != "reuse" for d in r["lmvae"]["decisions"]) for r in main["runs"]]
    assert spent["L-MVAE"]["images"] == pytest.approx(300.0 * sum(trained) / 3)
    assert spent["L-MVAE"]["probe images"] == pytest.approx(spent["L-MVAE"]["probe steps"] * s["batch"])
    # the half-budget run's schedules count its own, halved, epochs
    double = run.with_settings(s | dict(epochs=4, growth_epochs=2, hard_epochs=2))
    assert lmvae_claims.schedules(double.with_settings(exp_settings.half_budget(double.settings)))["main"] == 2 * 300


def test_lmvae_count_claims_decide_on_their_criterion():
    """The growth claims count experts (whole numbers): a count on the criterion that the half-budget run shares
    decides; a repeat that added an expert at half the budget makes the verdict wait."""
    from lmvae_core.papers.lmvae import claims as lmvae_claims
    from lmvae_core.experiments.calibration import Calibration
    from lmvae_core.papers.lmvae.settings import SETTINGS
    from lmvae_core.results.claims import with_half_budget

    s = SETTINGS["quick"]
    cal = Calibration("m", "mnist", "quick", 10, -99.0, -100.0, "test")
    images = {"main": 1e5, "growth": 3e4, "hard": 3e4}

    def claims(sweep):
        return lmvae_claims.claims(seed_rows(THREE_SEEDS), sweep, TURNS, COST, TIMING, cal, s, "quick", images, SPENT)

    full = claims([{"margin": s["threshold"], "experts added by the repeat": 0, "experts": 3}])
    same = by_claim(with_half_budget(full, full))
    assert same["A repeated domain adds no expert"].verdict == "reproduced"
    assert same["Every new domain gets its own expert"].verdict == "reproduced"
    assert same["A new domain gets an expert whichever domain came first"].verdict == "reproduced"
    grew = by_claim(with_half_budget(full, claims([{"margin": s["threshold"], "experts added by the repeat": 1,
                                                    "experts": 4}])))
    assert grew["A repeated domain adds no expert"].verdict == "not comparable"
    assert grew["Every new domain gets its own expert"].verdict == "not comparable"
