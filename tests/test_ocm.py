"""OCM (notebook 04): memory rules, expansion, freezing and the reservoir baseline, against ground truth."""
import math
from dataclasses import replace

import pytest
import torch
from scipy import stats

from lmvae_core.data.streams import DataConfig, TaskFreeStream, load_split
from lmvae_core.continual import OCMLearner
from lmvae_core.models.ocm import OCM, OCMConfig, kernel_scores, reservoir_update, select_indices
from lmvae_core.training.checkpoint import load_checkpoint, save_checkpoint

SMALL = dict(hidden=16, latent_dim=4, train_samples=1, epochs_per_batch=1, lr=1e-3, r_samples=2)


@pytest.fixture(scope="module")
def mnist():
    s = load_split("mnist", "train", DataConfig(source="sample"))
    keep = torch.isin(s.y, torch.tensor([0, 1, 2]))
    return s.subset(keep.nonzero().squeeze(1)[:600])


def test_stm_clears_after_selection(mnist):
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(stm_size=96, per_round=5, **SMALL)), seed=0)
    stream = iter(TaskFreeStream(mnist, 32))
    sizes = [learner.observe(*next(stream))["stm"] for _ in range(6)]
    assert sizes == [32, 64, 96, 32, 64, 96]  # before selection, as trained on
    assert learner.stm_x.shape[0] == 0 and len(learner.selections) == 2
    assert learner.selections[0]["added"] == 5


@pytest.mark.parametrize("direction,lambda1", [("diverse", 1.01), ("similar", -0.01)])
def test_ltm_respects_capacity_and_round_cap(mnist, direction, lambda1):
    torch.manual_seed(0)
    cfg = OCMConfig(stm_size=32, per_round=7, ltm_capacity=30, direction=direction, lambda1=lambda1, **SMALL)
    learner = OCMLearner(OCM(cfg), seed=0)
    sizes = [0]
    for x, y in list(TaskFreeStream(mnist, 32))[:10]:
        learner.observe(x, y)
        sizes.append(learner.memory_size)
    steps = [b - a for a, b in zip(sizes[:-1], sizes[1:])]
    assert max(sizes) == 30 and all(n <= 30 for n in sizes)  # everything passes the threshold: capacity binds
    assert max(steps) <= 7 and steps[:4] == [7, 7, 7, 7] and steps[4] == 2


def test_criterion_direction_on_constructed_case():
    ltm = torch.zeros(20, 3) + 0.01 * torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    dist = torch.tensor([0.0, 1.0, 30.0, 5.0, 60.0, 0.5])
    stm = torch.zeros(6, 3)
    stm[:, 0] = dist
    scores = kernel_scores(stm, ltm, "poster", alpha=10.0)
    expected = torch.exp(-dist ** 2 / 200.0)
    assert torch.allclose(scores, expected, atol=2e-3)
    code = kernel_scores(stm, ltm, "code", alpha=10.0)
    assert torch.allclose(code, torch.exp(-dist / (math.sqrt(2) * 10)), atol=2e-3)
    # diversity: the far samples (60, 30, then 5) pass, farthest first; the near ones stay out
    div = select_indices(scores, lambda1=0.9, direction="diverse", per_round=10, room=10)
    assert div.tolist() == [4, 2, 3]
    # similarity: the near samples pass, nearest first
    sim = select_indices(scores, lambda1=0.9, direction="similar", per_round=10, room=10)
    assert sim.tolist() == [0, 5, 1]
    # caps: per round and room left
    assert select_indices(scores, 0.9, "diverse", per_round=2, room=10).tolist() == [4, 2]
    assert select_indices(scores, 0.9, "similar", per_round=10, room=1).tolist() == [0]


def test_expansion_triggers_exactly_on_threshold():
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(dynamic=True, lambda2=10.0, max_components=3, **SMALL)))
    learner.ltm_x = torch.rand(5, 1, 28, 28)
    assert not learner.maybe_expand(-100.0)  # first round: only records R
    assert not learner.maybe_expand(-110.0)  # |diff| == lambda2: no expansion
    assert len(learner.model) == 1 and learner.memory_size == 5
    assert learner.maybe_expand(-120.0 - 1e-3)  # just above the threshold
    assert len(learner.model) == 2 and learner.memory_size == 0 and learner.r_last is None
    assert not learner.maybe_expand(-50.0)  # R_last measured afresh after growth
    assert learner.maybe_expand(-61.0)
    assert len(learner.model) == 3
    assert not learner.maybe_expand(0.0) and not learner.maybe_expand(100.0)  # component cap
    assert len(learner.model) == 3


def test_frozen_components_do_not_change(mnist, tmp_path):
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(stm_size=64, dynamic=True, **SMALL)), seed=0)
    batches = list(TaskFreeStream(mnist, 32))
    for x, y in batches[:2]:
        learner.observe(x, y)
    learner.r_last = 1e9
    assert learner.maybe_expand(0.0)
    model = learner.model
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("components.1.")}
    opt_params = {id(p) for g in learner.optimizer.param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in model.components[1].parameters()}
    new_before = [p.detach().clone() for p in model.components[1].parameters()]
    for x, y in batches[2:6]:
        learner.observe(x, y)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
    assert any(not torch.equal(a, b) for a, b in zip(new_before, model.components[1].parameters()))
    # reload keeps the structure and the freezing
    path = save_checkpoint(model, tmp_path / "ocm.pt")
    again = load_checkpoint(path)
    assert len(again) == 2 and not again.enc1.weight.requires_grad
    assert [p.requires_grad for p in again.components[0].parameters()] == [False] * 8


def test_batched_components_match_one_at_a_time(mnist):
    torch.manual_seed(0)
    model = OCM(OCMConfig(**SMALL), n_components=3)
    x = torch.bernoulli(mnist.x[:20], generator=torch.Generator().manual_seed(0))
    rec = model.reconstruction_error(x)
    for k in range(3):
        assert torch.allclose(rec[k], model.reconstruction_error(x, ids=[k])[0], atol=1e-5)
    torch.manual_seed(1)
    ll = model.iwae_per_component(x, 1)
    torch.manual_seed(1)
    lw = model.log_weights(x, 1)[:, 0]
    assert torch.allclose(ll, lw, atol=1e-4)


def test_reservoir_sampling_is_uniform():
    """Algorithm R: after a stream of 200 items, each is in a memory of 20 with probability 0.1."""
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(200)
    trials = 500
    for _ in range(trials):
        slots = torch.empty(0, dtype=torch.long)
        seen = 0
        for chunk in (64, 64, 50, 22):
            slots, _ = reservoir_update(slots, seen, chunk, 20, g)
            seen += chunk
        assert len(slots) == 20 and len(set(slots.tolist())) == 20
        counts[slots] += 1
    expected = trials * 20 / 200
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    p = stats.chi2.sf(chi2, df=199)
    assert p > 0.001, (chi2, p)
    # early and late items are equally likely (the classic bug keeps the first items)
    assert abs(counts[:100].mean() - counts[100:].mean()) < 0.15 * expected


# -- fidelity to the paper and the official code (issue 11, items 10-13) ------------------------------------
def test_fidelity_selection_rule_defaults_to_algorithm_2():
    """Supplement, Algorithm 2, step 12: a sample passes when its mean similarity to the LTM is *above* lambda1,
    with the RBF kernel of step 8; lambda1 = 0.6 is the supplement's setting. Then a larger lambda1 admits fewer
    samples (Appendix E). The earlier default was the 'diverse' rule with lambda1 = 0.9."""
    from lmvae_core.papers.ocm.experiments import SELECTION_VARIANTS, SETTINGS

    cfg = OCMConfig()
    assert (cfg.direction, cfg.kernel, cfg.lambda1, cfg.alpha) == ("similar", "poster", 0.6, 10.0)
    for s in SETTINGS.values():
        assert (s["direction"], s["kernel"], s["lambda1"]) == ("similar", "poster", 0.6)
    assert SELECTION_VARIANTS["official code"] == dict(direction="similar", kernel="code", lambda1=0.35)
    assert SELECTION_VARIANTS["diverse"]["direction"] == "diverse"
    scores = torch.linspace(0.05, 0.95, 19)
    admitted = [select_indices(scores, lam, cfg.direction, 100, 100).numel() for lam in (0.4, 0.6, 0.8)]
    assert admitted == sorted(admitted, reverse=True) and admitted[0] > admitted[-1]


def _learner_with_full_stm(order: str, n_stm: int, dynamic: bool = False):
    torch.manual_seed(0)
    cfg = OCMConfig(stm_size=64, per_round=5, order=order, dynamic=dynamic, lambda2=0.0, **SMALL)
    learner = OCMLearner(OCM(cfg), seed=0)
    learner.ltm_x, learner.ltm_y = torch.rand(10, 1, 28, 28), torch.full((10,), 7)
    learner.stm_x, learner.stm_y = torch.rand(n_stm, 1, 28, 28), torch.full((n_stm,), 3)
    return learner


def test_fidelity_stm_trigger_and_order_as_code():
    """The official code fires once the STM exceeds 512 (Algorithm 2: at >= 512); on expansion it clears the LTM
    before this round's selections are added, so they survive; Algorithm 2 clears it after them."""
    assert _learner_with_full_stm("paper", 64).stm_full() and not _learner_with_full_stm("code", 64).stm_full()
    assert _learner_with_full_stm("code", 65).stm_full()
    for order, kept in (("paper", 0), ("code", 5)):
        learner = _learner_with_full_stm(order, 64, dynamic=True)
        learner.r_last = 1e9  # any R differs by more than lambda2: the round expands
        info = learner.selection_round()
        assert info["expanded"] and len(learner.model) == 2
        assert learner.memory_size == kept and (learner.ltm_y == 3).all()  # only this round's STM samples remain


def test_fidelity_r_measured_before_selection_in_code_order(monkeypatch):
    """The official code measures R on STM u LTM before the selection; Algorithm 2 after it."""
    sizes = {}
    for order in ("paper", "code"):
        learner = _learner_with_full_stm(order, 64, dynamic=True)
        monkeypatch.setattr(learner, "memory_loglik", lambda l=learner, o=order: sizes.setdefault(o, l.memory_size) * 0.0)
        learner.selection_round()
    assert sizes == {"paper": 15, "code": 10}


def test_fidelity_embeddings_on_binarised_images():
    """The official code embeds a Bernoulli sample of the images (Give_Features_Function2), not the grey values."""
    learner = _learner_with_full_stm("paper", 64)
    x = torch.full((8, 1, 28, 28), 0.5)
    a, b = learner._embed(x), learner._embed(x)
    assert not torch.allclose(a, b)  # a fresh binarisation each time
    ones = learner._embed(torch.ones(2, 1, 28, 28))
    assert torch.allclose(ones, learner.model.embed(torch.ones(2, 1, 28, 28)))
    learner.config.embed_binarized = False
    assert torch.equal(learner._embed(x), learner.model.embed(x))


def test_fidelity_best_component_is_redrawn_and_mixture_reported(mnist):
    """K identical components: the uniform mixture is the component itself, so its log-likelihood equals one
    component's; choosing the best of K noisy estimates with the same draw overstates it (earlier report), while
    the value re-drawn for the chosen component (the official code) is unbiased."""
    from lmvae_core.data.streams import Split
    from lmvae_core.papers.ocm.experiments import evaluate

    torch.manual_seed(0)
    model = OCM(OCMConfig(**SMALL), n_components=1)
    for _ in range(3):
        model.add_component()
        model.components[-1].load_state_dict(model.components[0].state_dict())
    x = torch.bernoulli(mnist.x[:200], generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    m = evaluate(model, Split(x, mnist.y[:200]), k=2)
    torch.manual_seed(2)
    d1, d2 = model.iwae_per_component(x, 2, ids=[0])[0], model.iwae_per_component(x, 2, ids=[0])[0]
    sigma = float((d1 - d2).std()) / math.sqrt(2)  # Monte Carlo noise of one image's estimate
    # E[max of 4 normal draws] - E[draw] = 1.03 sigma; the earlier same-draw report carries that bias
    assert m["ll_best_same_draw"] - m["ll_best"] > 0.6 * sigma
    assert abs(m["ll_best"] - float(d1.mean())) < 5 * sigma * math.sqrt(2 / 200)
    assert m["ll_mixture"] >= min(m["ll_per_component"]) - 1e-4  # log-mean-exp >= mean of the components


def test_fidelity_schedule_of_the_official_code():
    """The official code's budget: int(60000/64) = 937 arriving batches x 100 passes over STM u LTM; with the
    LTM growing by at most 14 per round this is 1.56M optimiser steps. A claim from a run far below it is
    `not comparable`."""
    from lmvae_core.papers.ocm.claims import MIN_ABSOLUTE, official_steps, schedule
    from lmvae_core.results.claims import AtLeast, Claim, HalfBudget

    assert official_steps() == 1_556_300
    assert official_steps(epochs=1) == 15_563  # one pass: the quick profile's floor for a 60k stream
    # a brute-force count of the same schedule, written out independently
    stm, ltm, steps, rounds = [64], 64, 0, 0
    for _ in range(937):
        stm.append(64)
        steps += 100 * ((sum(stm) + ltm) // 64)
        if sum(stm) > 512:
            rounds += 1
            ltm += 14 if rounds > 1 else 0
            stm = []
    assert steps == official_steps()
    short = Claim("x", "1", 5.0, AtLeast(0.0), "quick", schedule=schedule(122, "mnist", MIN_ABSOLUTE))
    assert short.verdict == "not comparable" and "schedule too short" in short.row()["why"]
    full = schedule(1_556_300, "mnist", 0.5)
    settled = HalfBudget(4.8, schedule(778_150, "mnist", 0.5))  # moved 0.2 < 5.0, its distance to the criterion
    assert Claim("x", "1", 5.0, AtLeast(0.0), "paper", schedule=full, half=settled).verdict == "reproduced"
    # a paper claim without its half-budget value is not decided
    assert "no half-budget" in Claim("x", "1", 5.0, AtLeast(0.0), "paper", schedule=full).row()["why"]


def test_fidelity_iid_baseline_at_the_same_step_count(tmp_path):
    """Issue 11, item 13: the i.i.d. row trains the same network for exactly as many optimiser steps as the
    VAE-ELBO-OCM run of its stream and seed, so the notebook shows what the schedule alone gives."""
    from lmvae_core.papers.ocm import experiments as exp
    from lmvae_core.experiments.common import setup

    run = setup("04_ocm", "smoke", 0, "cpu", None, str(tmp_path / "out"), False, False, exp.SETTINGS, offline=True)
    per_run, results = exp.table_runs(run, ["mnist"], ("VAE-ELBO-OCM",))
    ocm, iid = results[("mnist", "VAE-ELBO-OCM", 0)], results[("mnist", exp.IID, 0)]
    assert iid["steps"] == ocm["steps"] > 0 and iid["memory_size"] == 0
    assert set(per_run.method) == {"VAE-ELBO-OCM", exp.IID}
    model = exp.rebuild(iid, "cpu")
    assert model.config == exp.model_config(run.settings, "mnist", "VAE-ELBO-OCM")


def test_stream_limit_is_shared_among_the_datasets_of_a_stream():
    """quick's 20,000 images per stream: an even share per dataset, a small dataset's remainder to the others."""
    from lmvae_core.papers.ocm.experiments import shares

    assert shares(20000, [60000]) == [20000]
    assert shares(20000, [60000, 16825]) == [10000, 10000]
    assert shares(20000, [60000, 16825, 3630]) == [8185, 8185, 3630]  # Omniglot's training drawers: 3,630
    assert shares(20001, [5000, 60000]) == [5000, 15001]
    assert shares(100, [30, 40]) == [30, 40]  # all there are where fewer
    assert shares(None, [1, 2]) == [None, None]


def test_sweep_runs_every_call_that_the_tables_and_studies_then_load(tmp_path, monkeypatch):
    """After exp.sweep, Table 1, Table 3, the ablations, the selection rules and the calibration all load from
    the cache: with a dead scheduler as executor, any call still to compute would fail to connect. The i.i.d.
    baseline and the official code's rule run only at the seeds iid_seeds and selection_seeds give them."""
    from lmvae_core.papers.ocm import experiments as exp
    from lmvae_core.papers.ocm import claims as ocm_claims
    from lmvae_core.experiments.common import setup
    from lmvae_core.results.cache import is_cached

    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    run = setup("04_ocm", "smoke", 0, "cpu", None, str(tmp_path / "out"), False, False, exp.SETTINGS, offline=True)
    run = run.with_settings(run.settings.replace(
        streams=("mnist",), seeds=(0, 1), cross_seeds=(), direction_seeds=(0, 1), iid_seeds=(1,),
        selection_seeds={"official code": (0,)}, ablation_lambda1=(), ablation_stm=(), ablation_lambda2=(),
        stream_limit=192, ablation_limit=192))
    exp.sweep(run, half=True)
    run.executor = "tcp://127.0.0.1:9"
    # the half-budget runs the claims read are cached too: the tables without the i.i.d. baselines, the two rules
    half = run.with_settings(exp.half_budget(run.settings))
    h_per_run, _, _, _ = exp.tables_for_claims(half, iid=False)
    assert len(h_per_run) == 4 * 2 and h_per_run.stream_length.max() <= 96  # a class-balanced 96 of the 192
    assert set(exp.selection_study(half, ["mnist"], exp.CLAIM_RULES).rule) == set(exp.CLAIM_RULES)
    assert len(exp.ablations(half, "mnist")) == 2
    assert sorted(exp.memory_study(run, half=True).lambda1) == [0.6, 0.8]  # the full run's study, halved
    per_run, _ = exp.table_runs(run, run.settings["streams"])
    assert sorted(per_run[per_run.method == exp.IID].seed) == [1]
    assert len(per_run) == 4 * 2 + 1
    selection = exp.selection_study(run, run.settings["streams"])
    assert sorted(map(tuple, selection[["rule", "seed"]].values)) == [
        ("diverse", 0), ("diverse", 1), ("official code", 0), ("paper (Algorithm 2)", 0), ("paper (Algorithm 2)", 1)]
    assert len(exp.ablations(run, "mnist")) == 2
    study = exp.memory_study(run)
    assert sorted(study.lambda1) == [0.6, 0.8] and set(study.stream) == {"mnist"} and study.stream_length.max() <= 192
    cal = exp.calibration_call(run, run.settings["joint"])
    assert is_cached(cal.name, cal.config) and ocm_claims.calibration(run).log_likelihood < 0


# -- issue 34: equal compute against the reservoir, half-budget runs, kinds -------------------------------------
def test_reservoir_baseline_matches_ocm_memory_and_steps(tmp_path, monkeypatch):
    """The reservoir of Table 1 ends with VAE-ELBO-OCM's final memory and trains for exactly its optimiser steps
    (each arriving batch: the STM and a draw from the reservoir as large as OCM's LTM then); a reservoir trained
    on all of its memory makes more steps, since it fills within the first rounds."""
    from lmvae_core.papers.ocm import experiments as exp
    from lmvae_core.experiments.common import setup

    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    run = setup("04_ocm", "smoke", 0, "cpu", None, str(tmp_path / "out"), False, False, exp.SETTINGS, offline=True)
    run = run.with_settings(run.settings.replace(stream_limit=640, iid_seeds=()))
    per_run, results = exp.table_runs(run, ["mnist"], ("VAE-ELBO-OCM", "VAE-ELBO-Random"))
    ocm, res = results[("mnist", "VAE-ELBO-OCM", 0)], results[("mnist", "VAE-ELBO-Random", 0)]
    assert res["memory_size"] == ocm["memory_size"] > 0
    assert res["steps"] == ocm["steps"] and res["replayed_rows"] == ocm["replayed_rows"]
    # the LTM each arriving batch trained on, as OCM's grew
    assert exp.ltm_rows_of(ocm)[0] == 0 and exp.ltm_rows_of(ocm)[1:] == [h["ltm"] for h in ocm["history"][:-1]]
    unmatched = exp.run_stream(run, "mnist", "VAE-ELBO-Random", 0, ltm_capacity=ocm["memory_size"])
    assert unmatched["memory_size"] == ocm["memory_size"] and unmatched["steps"] > 1.05 * ocm["steps"]


def test_half_budget_halves_what_the_schedule_counts_and_nothing_else():
    from lmvae_core.papers.ocm.experiments import SETTINGS, half_budget, half_budget_how

    for profile in ("smoke", "quick"):  # one pass per arriving batch: half the stream
        s = SETTINGS[profile]
        h = half_budget(s)
        assert h["stream_limit"] == s["stream_limit"] // 2 and h["ablation_limit"] == s["ablation_limit"] // 2
        assert {k for k in s if h[k] != s[k]} == {"stream_limit", "ablation_limit"}
    s = SETTINGS["paper"]  # 100 passes per arriving batch over the whole stream: half the passes
    h = half_budget(s)
    assert h["epochs_per_batch"] == 50 and {k for k in s if h[k] != s[k]} == {"epochs_per_batch"}
    assert "50 instead of 100 passes" in half_budget_how(s)
    assert SETTINGS["quick"]["stream_limit"] == 20000  # the settings themselves are untouched


def _per_run(steps_random: float, shift: float = 0.0):
    import pandas as pd

    rows = []
    for stream in ("mnist", "cross"):
        for method, ll, steps, memory in (("VAE-ELBO-OCM", -120.0, 2862, 546),
                                          ("VAE-ELBO-Random", -121.0, steps_random, 546),
                                          ("VAE-IWVAE50-OCM", -119.0, 2862, 546),
                                          ("Dynamic-ELBO-OCM", -140.0, 2348, 420)):
            for seed in (0, 1, 2):
                rows.append(dict(stream=stream, method=method, seed=seed, ll_best=ll + shift + 0.1 * seed,
                                 ll_mixture=ll, memory=memory + shift, components=1, steps=steps + shift,
                                 stream_length=20000))
    return pd.DataFrame(rows)


def _memory_and_selection(shift: float = 0.0):
    """A memory study (split MNIST at lambda1 0.6 and 0.8, split Fashion at 0.6) and the selection rules on split
    MNIST and split MNIST-Fashion, as the studies return them."""
    import pandas as pd

    memory = pd.DataFrame([dict(stream=stream, seed=0, lambda1=lam, passes=11, memory=mem + shift, classes_in_memory=10,
                                steps=steps + shift, stream_length=60000)
                           for stream, lam, mem, steps in (("mnist", 0.6, 1638, 171_000), ("mnist", 0.8, 900, 120_000),
                                                           ("fashion", 0.6, 460, 166_000))])
    sel = pd.DataFrame([dict(stream=stream, seed=seed, rule=rule, ll_best=-120.0 + seed, memory=546,
                             classes_in_memory=cls, steps=2862, stream_length=20000)
                        for stream, cls in (("mnist", 10), ("mnist_fashion", 19)) for seed in (0, 1, 2)
                        for rule in ("paper (Algorithm 2)", "diverse")])
    return memory, sel


def test_claims_have_kinds_where_and_equal_compute():
    """Every claim states its kind (and where, for the paper's); every comparison records both sides' steps and
    real images: the reservoir at equal steps is comparable by compute, at 4,142 against 2,862 it is not;
    Dynamic-OCM's fewer steps are its method (it empties the LTM) and say so."""
    from lmvae_core.papers.ocm import claims as cm
    from lmvae_core.results.claims import KINDS

    memory, sel = _memory_and_selection()
    out = cm.claims(_per_run(2862), sel, memory, "quick", True, 0.6)
    assert all(c.kind in KINDS for c in out) and all(c.where for c in out)
    per_method = [c for c in out if "test log-likelihood" in c.claim]
    assert len(per_method) == 8 and {c.kind for c in per_method} == {"paper"}
    assert {c.where for c in per_method} == {"Table 1", "Table 3"}
    comparisons = [c for c in out if " minus " in c.claim]
    assert comparisons and all(c.compute is not None for c in comparisons)
    reservoir = [c for c in out if "reservoir" in c.claim]
    assert len(reservoir) == 2 and all(c.compute.equal and "unequal" not in c.row()["why"] for c in reservoir)
    dynamic = [c for c in out if "dynamic expansion" in c.claim]
    assert all(not c.compute.equal and c.compute.why_unequal for c in dynamic)
    assert [c.kind for c in out if "diversity variant" in c.claim] == ["beyond", "beyond"]  # two streams
    unequal = cm.claims(_per_run(4142), sel, memory, "quick", True, 0.6)
    for c in (c for c in unequal if "reservoir" in c.claim):
        c = replace(c, schedule=None)  # the schedule alone would leave it undecided
        assert c.verdict == "not comparable" and c.row()["why"].startswith("unequal compute")


def test_claims_match_their_half_budget_values_by_text():
    """Claim texts carry no run-dependent number: every claim of a full run finds its half-budget value."""
    from lmvae_core.papers.ocm import claims as cm
    from lmvae_core.results.claims import with_half_budget

    memory, sel = _memory_and_selection()
    full = cm.claims(_per_run(2862), sel, memory, "quick", True, 0.6)
    half = cm.claims(_per_run(2862, shift=-7.0), sel, memory, "quick", True, 0.6)
    both = with_half_budget(full, half, how="a second run on 10,000 instead of 20,000 images per stream")
    assert all(c.half is not None for c in both)
    ll = next(c for c in both if c.claim.startswith("Split MNIST: VAE-ELBO-OCM test"))
    assert ll.half.ours == ll.ours - 7.0 and ll.half.schedule.ours == ll.schedule.ours - 7.0


def test_memory_claims_read_the_memory_study():
    """lambda1's claim and the class coverage of split MNIST and Fashion come from the memory study, with its
    steps as their schedule (the lambda1 claim: the run at the method's lambda1, since a larger lambda1's smaller
    LTM makes fewer steps by itself); a stream outside the study (split MNIST-Fashion) keeps Table 1's runs."""
    from lmvae_core.papers.ocm import claims as cm
    from lmvae_core.results.claims import with_half_budget

    memory, sel = _memory_and_selection()
    out = cm.claims(_per_run(2862), sel, memory, "quick", True, 0.6)
    half = cm.claims(_per_run(2862), sel, _memory_and_selection(shift=-50.0)[0], "quick", True, 0.6)
    out = with_half_budget(out, half, how="a second run at 6 instead of 11 passes")
    lam = next(c for c in out if "lambda1" in c.claim)
    assert lam.ours == 1638 - 900 and lam.schedule.ours == 171_000 and lam.schedule.decides
    assert lam.verdict == "reproduced" and "11 passes" in lam.note and not lam.compute.equal
    cov = {c.claim.split(":")[0]: c for c in out if "covers" in c.claim}
    assert set(cov) == {"Split MNIST", "Split Fashion", "Split MNIST-Fashion"}
    assert cov["Split MNIST"].schedule.ours == 171_000 and cov["Split Fashion"].schedule.ours == 166_000
    assert cov["Split MNIST"].verdict == "reproduced" and "memory study" in cov["Split MNIST"].note
    mf = cov["Split MNIST-Fashion"]
    assert mf.ours == 19 and mf.schedule.ours == 2862 and mf.verdict == "not comparable"
    # without a run at the method's lambda1 there is nothing to compare against
    assert not [c for c in cm.claims(_per_run(2862), sel, memory[memory.lambda1 != 0.6], "quick", True, 0.6)
                if "lambda1" in c.claim]


def test_memory_study_reaches_its_share_of_the_official_steps_whatever_the_data(monkeypatch):
    """Quick's memory study trains on every image of the stream with the fewest passes per arriving batch whose
    official step count reaches its share (10.5%) of the 1.56M of a 60,000-image stream: 11 on full MNIST, more on
    the partial Fashion copy this project ships; the smoke and paper profiles run their own settings."""
    import math

    import torch

    from lmvae_core.data.streams import Split
    from lmvae_core.papers.ocm import experiments as exp, runs
    from lmvae_core.experiments.common import Run

    target = 0.105 * exp.official_steps(60_000)
    for n, passes in ((60_000, 11), (16_825, 75)):
        monkeypatch.setattr(runs, "load_stream", lambda run, stream, limit, n=n: (Split(torch.zeros(n, 1),
                                                                                     torch.zeros(n)), None))
        run = Run("04_ocm", "quick", 0, torch.device("cpu"), None, None, settings=dict(exp.SETTINGS["quick"]))
        s = exp.memory_study_settings(run, "fashion")
        assert s["epochs_per_batch"] == passes and s["stream_limit"] is None
        assert exp.official_steps(n, epochs=passes) >= target > exp.official_steps(n, epochs=passes - 1)
        h = exp.half_budget(s)
        assert h["epochs_per_batch"] == math.ceil(passes / 2) and h["stream_limit"] is None
    for profile in ("smoke", "paper"):
        run = Run("04_ocm", profile, 0, torch.device("cpu"), None, None, settings=dict(exp.SETTINGS[profile]))
        assert exp.memory_study_settings(run, "mnist") == exp.SETTINGS[profile]


def test_table3_reference_numbers():
    """Poster Table 3 (MNIST -> Fashion -> Omniglot): memory 3.0K for the reservoir, 2.0K for the single-VAE OCM
    rows, and a VAE-IWVAE50-OCM row (-204.35); Table 3's runs include it."""
    from lmvae_core.papers.ocm.experiments import CROSS_METHODS, PAPER

    assert PAPER["cross"] == {"VAE-ELBO-Random": (-239.71, 3000, 1), "VAE-ELBO-OCM": (-201.31, 2000, 1),
                              "VAE-IWVAE50-OCM": (-204.35, 2000, 1), "Dynamic-ELBO-OCM": (-177.29, 1500, 11)}
    assert set(CROSS_METHODS) == set(PAPER["cross"])


@pytest.mark.parametrize("order", ["paper", "code"])
def test_first_round_is_a_uniform_random_draw_of_the_stm(order):
    """Ground truth: with an empty LTM there is nothing to compare with, so the first round takes per_round STM
    samples at random: distinct rows, each STM row equally likely (per_round / n_stm per round), and not the first
    rows. The STM rows carry their position as the label, so the LTM's labels say which rows were taken."""
    n_stm, per_round, rounds = 20, 5, 400
    torch.manual_seed(0)
    learner = OCMLearner(OCM(OCMConfig(stm_size=n_stm, per_round=per_round, order=order, **SMALL)), seed=0)
    learner.stm_x, learner.stm_y = torch.rand(n_stm, 1, 28, 28), torch.arange(n_stm)
    counts = torch.zeros(n_stm)
    for _ in range(rounds):
        chosen, _ = learner.choose()  # the LTM stays empty: every call is a first round
        assert chosen.numel() == per_round and chosen.unique().numel() == per_round
        counts += torch.bincount(chosen, minlength=n_stm)
    # each row is drawn in a round with probability 1/4: a chi-square test of uniformity over the 20 rows
    expected = rounds * per_round / n_stm
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert stats.chi2.sf(chi2, n_stm - 1) > 1e-3, counts
    # through a whole selection round: the LTM holds per_round distinct STM rows, not the first ones
    learner.selection_round()
    taken = sorted(learner.ltm_y.tolist())
    assert len(set(taken)) == per_round and taken != list(range(per_round))


# -- what mutation testing of continual/ocm.py found untested (benchmarks/mutants.py, `make mutants MODULE=ocm`) ----
def _tiny(**kw) -> OCMLearner:
    """A learner on a 784-16-4 OCM, its model made under torch seed 0 (so two such learners start equal)."""
    torch.manual_seed(0)
    return OCMLearner(OCM(OCMConfig(**{**SMALL, **kw})), seed=0)


def _rows(n: int, first: int = 0) -> torch.Tensor:
    """n distinct binary images (0/1 pixels, so binarize_dynamic leaves them as they are): image i has pixels
    0..first+i set."""
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        x[i].view(-1)[: first + i + 1] = 1.0
    return x


def test_constructor_defaults_arguments_and_empty_memory():
    """OCMLearner needs a model or a config; seed 0 and no progress bar by default; its optimiser takes the config's
    lr and (beta1, 0.999); init_args (what `load` rebuilds it from) are config, seed, progress and own_noise; STM and LTM
    start empty with the image shape and long labels, the reservoir slots empty and long, the counters at 0; the
    model, memory and labels live on the given device (the meta device here, no data needed)."""
    with pytest.raises(ValueError, match="^give an OCM model or an OCMConfig$"):
        OCMLearner()
    cfg = OCMConfig(lr=3e-4, beta1=0.7, **{k: v for k, v in SMALL.items() if k != "lr"})
    learner = OCMLearner(config=cfg)
    assert learner.seed == 0 and learner.init_args == {"config": cfg, "seed": 0, "progress": False, "own_noise": False}
    assert learner.optim.lr == 3e-4 and learner.optim.betas == (0.7, 0.999) and learner.optim.progress is False
    assert learner.optimizer.param_groups[0]["betas"] == (0.7, 0.999)
    assert OCMLearner(config=cfg, progress=True).optim.progress is True  # the argument reaches the shared options
    for name in ("stm_x", "ltm_x"):
        assert getattr(learner, name).shape == (0, 1, 28, 28)
    for name in ("stm_y", "ltm_y", "ltm_pos"):
        t = getattr(learner, name)
        assert t.shape == (0,) and t.dtype == torch.long
    assert (learner.seen, learner.batches, learner.steps, learner.r_last) == (0, 0, 0, None)
    assert torch.equal(learner.generator.get_state(), torch.Generator().manual_seed(0).get_state())
    meta = OCMLearner(OCM(OCMConfig(**SMALL)), device="meta")
    assert meta.device.type == "meta" and meta.model.enc1.weight.device.type == "meta"
    for name in ("stm_x", "stm_y", "ltm_x", "ltm_y"):
        assert getattr(meta, name).device.type == "meta", name
    assert OCMLearner(OCM(OCMConfig(**SMALL)).to("meta")).device.type == "meta"  # no device: the model's


def test_memory_passes_count_steps_and_rows_and_follow_the_learners_generator():
    """One pass over STM u LTM (40 rows, batch 32): the rows in the order of the learner's generator's randperm,
    as batches of 32 and 8, every batch tagged epoch 0 (one "epoch" for the loop); steps + 2 and replayed_rows
    + 40 per pass; train_memory(epochs) runs that many passes (3 here, not the config's 1); with nothing in memory
    it returns NaN. The order does not depend on torch's global generator."""
    learner = _tiny(batch_size=32)
    learner.stm_x, learner.ltm_x = _rows(25), _rows(15, first=100)
    data = torch.cat([learner.stm_x, learner.ltm_x])
    torch.manual_seed(123)
    batches = list(learner._memory_batches(1))
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    assert [e for e, _ in batches] == [0, 0] and [b.shape[0] for _, b in batches] == [32, 8]
    assert torch.equal(torch.cat([b for _, b in batches]), data[order])
    assert (learner.steps, learner.replayed_rows) == (2, 40)
    learner.train_memory(epochs=3)
    assert (learner.steps, learner.replayed_rows) == (8, 160)
    assert math.isnan(_tiny().train_memory())


def test_observe_records_rows_labels_counts_and_trains_in_training_mode(capsys):
    """observe(x) without labels stores -1 labels (long, one per row); seen and batches count up; each history row
    has the batch, seen, finite mean loss, STM size trained on, components before and after and the LTM size;
    the selection round's record adds batch, LTM size, components and the LTM's labels; the STM (images and
    labels) is empty after it. Training runs in training mode (the model is switched to it) and shows no
    progress bar."""
    learner = _tiny(stm_size=64, per_round=5, batch_size=32)
    learner.model.eval()
    trained_in = []
    loss = learner.model.loss
    learner.model.loss = lambda x: (trained_in.append(learner.model.training), loss(x))[1]
    rows = [learner.observe(_rows(32)) for _ in range(2)]
    assert trained_in and all(trained_in)
    assert rows[0] == {"batch": 1, "seen": 32, "loss": rows[0]["loss"], "stm": 32, "components": 1, "ltm": 0,
                       "components_after": 1}
    assert math.isfinite(rows[0]["loss"]) and rows[1]["batch"] == 2 and rows[1]["seen"] == 64
    assert rows[1]["stm"] == 64 and rows[1]["ltm"] == 5
    sel = learner.selections[0]
    assert (sel["batch"], sel["ltm"], sel["components"]) == (2, 5, 1) and sel["added"] == 5
    assert torch.equal(sel["ltm_labels"], torch.full((5,), -1))
    assert learner.stm_x.shape[0] == 0 and learner.stm_y.shape[0] == 0
    assert learner.ltm_y.dtype == torch.long and learner.ltm_y.shape == (5,)
    learner.observe(_rows(3), torch.tensor([4, 5, 6]))
    assert learner.stm_y.tolist() == [4, 5, 6] and learner.seen == 67
    labels = _tiny(stm_size=64)
    labels.observe(_rows(7))
    assert labels.stm_y.dtype == torch.long and labels.stm_y.tolist() == [-1] * 7
    assert capsys.readouterr().err == ""


def test_reservoir_round_keeps_stream_positions_labels_and_its_own_generator():
    """Reservoir memory: the first round (LTM room for all) stores every STM row with its label and its stream
    position 0..n-1 and reports added = n; later rounds place row i of the STM at slot j drawn by Algorithm R with
    the learner's generator (so the global torch generator changes nothing) and record its position
    seen - n_stm + i. selection_round uses this rule in either order."""
    for order in ("paper", "code"):
        learner = _tiny(memory="reservoir", ltm_capacity=8, stm_size=6, order=order)
        learner.stm_x, learner.stm_y, learner.seen = _rows(6), torch.arange(6), 6
        info = learner.selection_round()
        assert info["added"] == 6 and math.isnan(info["scores_mean"])
        assert learner.ltm_pos.tolist() == list(range(6)) and learner.ltm_y.tolist() == list(range(6))
        assert torch.equal(learner.ltm_x, _rows(6))
    runs = []
    for global_seed in (1, 2):
        learner = _tiny(memory="reservoir", ltm_capacity=4, stm_size=6)
        learner.stm_x, learner.stm_y, learner.seen = _rows(6), torch.arange(6), 6
        learner.select()
        learner.stm_x, learner.stm_y, learner.seen = _rows(6, first=50), torch.arange(10, 16), 12
        torch.manual_seed(global_seed)
        added = learner.select()["added"]
        runs.append((learner.ltm_pos.tolist(), learner.ltm_y.tolist(), added))
        g = torch.Generator().manual_seed(0)  # the learner's generator (seed 0), replayed over both rounds
        slots, _ = reservoir_update(torch.empty(0, dtype=torch.long), 0, 6, 4, g)
        slots, moves = reservoir_update(slots, 6, 6, 4, g)
        assert added == len(moves) > 0 and learner.ltm_pos.tolist() == slots.tolist()
    assert runs[0] == runs[1]
    pos, labels, _ = runs[0]
    assert len(pos) == len(labels) == 4
    assert all(lab == (p if p < 6 else p - 6 + 10) for p, lab in zip(pos, labels))  # label and position agree


def test_kernel_round_reports_its_scores_uses_alpha_and_the_first_round_its_generator():
    """A kernel round against a non-empty LTM reports the STM's mean, min and max score (kernel with the config's
    alpha, on the embeddings) and how many passed; the first round (empty LTM) reports only scores_mean = NaN and
    draws its rows with the learner's generator, whatever torch's global generator."""
    learner = _tiny(alpha=3.0, embed_binarized=False, lambda1=0.0, stm_size=20, per_round=4)
    learner.stm_x, learner.stm_y = torch.rand(20, 1, 28, 28), torch.arange(20)
    draws = []
    for global_seed in (1, 2):
        learner.generator.manual_seed(5)
        torch.manual_seed(global_seed)
        chosen, info = learner.choose()
        draws.append(chosen.tolist())
        assert list(info) == ["scores_mean"] and math.isnan(info["scores_mean"])
    assert draws[0] == draws[1] == torch.randperm(20, generator=torch.Generator().manual_seed(5))[:4].tolist()
    learner.ltm_x = torch.rand(6, 1, 28, 28)
    chosen, info = learner.choose()
    with torch.no_grad():
        scores = kernel_scores(learner.model.embed(learner.stm_x), learner.model.embed(learner.ltm_x), "poster", 3.0)
    assert info["scores_mean"] == pytest.approx(float(scores.mean()))
    assert info["scores_min"] == pytest.approx(float(scores.min()))
    assert info["scores_max"] == pytest.approx(float(scores.max()))
    assert info["passing"] == chosen.numel() == 20  # lambda1 = 0: every sample passes


def test_a_full_ltm_admits_nothing_and_is_not_scored():
    """With the LTM at capacity, admit() adds no row, select() returns added = 0 without scoring, and a code-order
    round neither scores nor admits (its info has only `added`)."""
    learner = _tiny(ltm_capacity=10, stm_size=8, per_round=3)
    learner.ltm_x, learner.ltm_y = torch.rand(10, 1, 28, 28), torch.zeros(10, dtype=torch.long)
    learner.stm_x, learner.stm_y = torch.rand(8, 1, 28, 28), torch.ones(8, dtype=torch.long)
    assert learner.admit(torch.arange(5)) == 0 and learner.memory_size == 10
    learner.choose = lambda: pytest.fail("scored a full LTM")
    info = learner.select()
    assert info["added"] == 0 and math.isnan(info["scores_mean"]) and set(info) == {"scores_mean", "added"}
    learner.config.order = "code"
    assert learner.selection_round() == {"added": 0} and learner.memory_size == 10


def test_expansion_clears_the_reservoir_slots_and_logs_the_batch():
    """An expansion empties the LTM with its labels and reservoir slots and logs the arriving batch's index."""
    learner = _tiny(dynamic=True, lambda2=1.0, max_components=3)
    learner.ltm_x, learner.ltm_y, learner.ltm_pos = torch.rand(4, 1, 28, 28), torch.arange(4), torch.arange(4)
    learner.batches, learner.r_last = 7, 0.0
    assert learner.maybe_expand(5.0)
    assert learner.ltm_pos.shape == (0,) and learner.ltm_y.shape == (0,) and learner.expansions == [7]


def test_log_likelihood_is_the_uniform_mixture_of_the_components():
    """log p(x) = logsumexp_k(log p_k(x)) - log K over the components' IWAE estimates (same draw)."""
    learner = _tiny()
    learner.model.add_component()
    x = (torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        torch.manual_seed(4)
        got = learner.log_likelihood(x, 3)
        torch.manual_seed(4)
        per = learner.model.iwae_per_component(x, 3)
    assert per.shape == (2, 3)
    assert torch.allclose(got, torch.logsumexp(per, 0) - math.log(2), atol=1e-5)


def test_a_saved_learner_loads_with_its_config_and_an_optimiser_over_the_trainable_parameters(tmp_path):
    """BaseLearner.load rebuilds an OCMLearner after an expansion: its config is the loaded model's, and it has a
    fresh optimiser over exactly the unfrozen parameters (Adam's moments are not saved), so it observes on."""
    from lmvae_core.continual.base import BaseLearner

    learner = _tiny(stm_size=64, per_round=3)
    learner.observe(_rows(20))
    learner.model.add_component()
    loaded = BaseLearner.load(learner.save(tmp_path / "ocm.pt"))
    assert loaded.config == learner.config and loaded.config is loaded.model.config and len(loaded.model) == 2
    params = [p for g in loaded.optimizer.param_groups for p in g["params"]]
    assert [id(p) for p in params] == [id(p) for p in loaded.model.trainable_parameters()]
    assert not loaded.optimizer.state and torch.equal(loaded.stm_x, learner.stm_x)
    loaded.observe(_rows(4))
    assert loaded.seen == 24


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")  # meta tensors hold no values
def test_a_restored_state_moves_the_memory_to_the_learners_device_but_not_the_reservoir_slots():
    """set_state and load_resume_state put the model, STM, LTM and labels on the learner's device (the meta device
    here, a stand-in for a GPU) and leave the reservoir slots on the CPU, where the learner's generator draws."""
    source = _tiny(memory="reservoir", ltm_capacity=8, stm_size=6)
    source.stm_x, source.stm_y, source.seen = _rows(6), torch.arange(6), 6
    source.select()
    meta = OCMLearner(OCM(OCMConfig(**SMALL, memory="reservoir", ltm_capacity=8, stm_size=6)), device="meta")
    meta.set_state(source.state())
    for name in ("stm_x", "stm_y", "ltm_x", "ltm_y"):
        assert getattr(meta, name).device.type == "meta", name
    assert meta.ltm_pos.device.type == "cpu" and meta.ltm_pos.tolist() == list(range(6))
    again = OCMLearner(OCM(OCMConfig(**SMALL, memory="reservoir", ltm_capacity=8, stm_size=6)), device="meta")
    again.load_resume_state(source.resume_state())
    assert again.model.enc1.weight.device.type == "meta" and again.ltm_x.device.type == "meta"
    assert again.ltm_pos.device.type == "cpu"


def test_a_resume_state_is_a_copy_that_training_on_leaves_as_it_was():
    """resume_state() is a snapshot: observing on (Adam updates its moments in place, the logs grow, the reservoir
    writes LTM slots in place) changes neither the state taken before nor, once loaded, the state loaded from."""
    learner = _tiny(memory="reservoir", ltm_capacity=4, stm_size=8, batch_size=8)
    learner.observe(_rows(8))
    snap = learner.resume_state()
    moments = {k: v.clone() for k, v in snap["optimizer"]["state"][0].items() if isinstance(v, torch.Tensor)}
    ltm, n_history = snap["state"]["ltm_x"].clone(), len(snap["state"]["history"])
    for _ in range(2):
        learner.observe(_rows(8, first=200))
    assert all(torch.equal(snap["optimizer"]["state"][0][k], v) for k, v in moments.items())
    assert len(snap["state"]["history"]) == n_history and len(snap["state"]["selections"]) == 1
    assert torch.equal(snap["state"]["ltm_x"], ltm)
    other = _tiny(memory="reservoir", ltm_capacity=4, stm_size=8, batch_size=8)
    other.load_resume_state(snap)
    other.observe(_rows(8, first=300))
    assert len(snap["state"]["history"]) == n_history and len(other.history) == n_history + 1
