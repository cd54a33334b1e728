"""Notebook 00's claims: kinds, the half-budget rule, equal compute in the balancing ablation, and the mixture
prior's initial state kept apart from the trained one."""
import math

import pytest
import torch

from lmvae_core.papers.mixture_of_vaes import experiments as exp
from lmvae_core.papers.mixture_of_vaes import settings as moe_settings
from lmvae_core.results.claims import NO_HALF, NOT_COMPARABLE, with_half_budget


def _run(settings=None):
    from lmvae_core.experiments.common import setup

    run = setup("00_mixture_of_vaes", profile="smoke", settings=moe_settings.SETTINGS)
    return run if settings is None else run.with_settings(settings)


def _inputs(accuracy=0.60, purity=0.62, none_entropy=0.1, steps_none=100):
    metrics = {"accuracy": accuracy, "purity": purity, "kmeans_accuracy": 0.55, "latent_kmeans_accuracy": 0.59}
    results = {"mnist": {"metrics": metrics}, "fashion": {"metrics": dict(metrics)}}
    ablation = [{"balance": b, "seed": s, "usage_entropy": e, "steps": steps_none if b == "none" else 100,
                 "images": 1000} for b, e in (("kl", 2.3), ("none", none_entropy)) for s in (0, 1)]
    score = {"accuracy": 0.2, "many_to_one": 0.9, "clusters_used": 50}
    beyond = [{"components": c, "latent k-means": score, "GMM initialisation": score, "mixture-prior VAE": score}
              for c in (10, 50)]
    return results, ablation, beyond


def test_half_budget_halves_the_training_budgets_and_nothing_else():
    for profile, s in moe_settings.SETTINGS.items():
        h = moe_settings.half_budget(s)
        for k in s:
            if k in moe_settings.BUDGET_KEYS and s[k] is not None:  # None: a budget the profile does not set
                assert h[k] == max(1, s[k] // 2), (profile, k)
            else:
                assert h[k] == s[k], (profile, k)  # networks, data, seeds, evaluation and the calibration unchanged
        assert s == moe_settings.SETTINGS[profile]  # the profile's settings are not modified in place
        assert type(h) is type(s)  # still typed
    quick, half = moe_settings.SETTINGS["quick"], moe_settings.half_budget(moe_settings.SETTINGS["quick"])
    assert (half["epochs"], half["ablation_epochs"]) == (5, 2)
    # Fashion-MNIST: 34 epochs on the 16,825 offline images, 17 at half the budget; 10 and 5 on the full split
    assert [moe_settings.epochs_for(s, "fashion", 16_825) for s in (quick, half)] == [34, 17]
    assert [moe_settings.epochs_for(s, "fashion", 60_000) for s in (quick, half)] == [10, 5]


def test_half_run_claims_match_by_text_and_carry_their_own_halved_schedule():
    s = moe_settings.SETTINGS["smoke"] | {"epochs": 4, "fashion_images": 12_000, "ablation_epochs": 2}  # sample: 2,000
    run, half = _run(s), _run(moe_settings.half_budget(s))
    full = exp.claims(run, *_inputs(), calibrated=True)
    # other values in the half run (the claim texts hold no run-dependent number), no mixture prior there
    results, ablation, _ = _inputs(accuracy=0.52, purity=0.6, none_entropy=0.3)
    halves = exp.claims(half, results, ablation, [], calibrated=True)
    assert {c.claim for c in halves} <= {c.claim for c in full} and len(halves) == len(full) - 1
    for h in halves:
        f = next(c for c in full if c.claim == h.claim)
        assert math.isclose(h.schedule.ours, f.schedule.ours / 2)
    attached = with_half_budget(full, halves)
    assert all(c.half is not None for c in attached if not c.claim.startswith("Beyond the post"))
    classifier = next(c for c in attached if c.claim.startswith("The manager classifies"))
    # 0.52 at half the budget is 'not reproduced' against 0.59 (partly 0.55): the 0.60 verdict does not stand
    assert classifier.verdict == NOT_COMPARABLE and "still moving" in classifier.row()["why"]
    purity = next(c for c in attached if c.claim.startswith("Experts specialise"))
    assert purity.verdict == "partly"  # 0.60 -> 0.62 moved 0.02, under its 0.08 distance to the 0.7 bar


def test_every_claim_sets_its_kind_and_paper_claims_need_a_half_budget_value():
    claims = exp.claims(_run(), *_inputs(), calibrated=True)
    kinds = {c.claim.split(":")[0].split(" (")[0]: c.kind for c in claims}
    assert kinds == {"Experts specialise": "paper", "The manager classifies digits without labels": "paper",
                     "Without balancing the manager degenerates": "paper",
                     "With balancing, expert usage is near uniform": "sanity",
                     "Same on Fashion-MNIST": "beyond", "Beyond the post": "beyond"}
    for c in claims:
        if c.kind == "paper":
            assert c.where and c.verdict == NOT_COMPARABLE and NO_HALF in c.row()["why"]
        assert c.schedule.min_fraction == 0.0  # no share floor: the half-budget rule decides


def test_balancing_ablation_compares_at_equal_compute():
    claims = exp.claims(_run(), *_inputs(), calibrated=True)
    none = next(c for c in claims if c.claim.startswith("Without balancing"))
    assert none.compute is not None and none.compute.equal
    assert none.compute.steps == (200, 200) and none.compute.images == (2000, 2000)
    # a side with more steps is not comparable unless it says why
    unequal = exp.claims(_run(), *_inputs(steps_none=150), calibrated=True)
    assert "unequal compute" in next(c for c in unequal if c.claim.startswith("Without")).row()["why"]


def test_classifier_is_judged_against_the_kmeans_baselines_without_compute():
    claims = exp.claims(_run(), *_inputs(), calibrated=True)
    classifier = claims[1]
    assert classifier.rule.threshold == 0.59 and classifier.rule.partly == 0.55
    assert classifier.compute is None  # k-means is not trained by steps


def test_mixture_prior_keeps_the_gmm_initialisation_apart_from_the_trained_model():
    from lmvae_core.data import DataConfig
    from lmvae_core.papers.mixture_of_vaes import prior
    from lmvae_core.models.vae import VAEConfig
    from lmvae_core.training.loop import TrainConfig

    data = DataConfig(source="sample", device="cpu")
    tcfg = TrainConfig(epochs=1, batch_size=100, progress=False)
    plain = prior.train_plain_vae("mnist", VAEConfig(hidden=(16,), latent_dim=2), tcfg, data, seed=0)
    res = prior.train_mog_variant("mnist", plain, 3, tcfg, data, seed=0)
    initial, trained = res["initial"]["state"], res["state"]
    assert initial.keys() == trained.keys()
    moved = [k for k in initial if not torch.equal(initial[k], trained[k])]
    assert moved  # a snapshot: training after the pack did not change it
    # the initial encoder is the plain VAE's (the GMM initialisation changes only the prior)
    for k, v in plain["state"].items():
        if k in initial:
            assert torch.equal(initial[k], v), k


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_fashion_budget_in_images_sets_its_epochs_and_mnist_keeps_its_own(profile):
    s = moe_settings.SETTINGS[profile]
    assert moe_settings.epochs_for(s, "mnist", 60_000) == s["epochs"]
    if s["fashion_images"] is not None:
        assert moe_settings.epochs_for(s, "fashion", 16_825) * 16_825 == pytest.approx(s["fashion_images"], rel=0.02)
    else:
        assert moe_settings.epochs_for(s, "fashion", 16_825) == s["epochs"]


def test_half_results_train_at_half_the_epochs_and_keep_the_full_runs_baselines():
    s = moe_settings.SETTINGS["smoke"] | {"datasets": ("mnist",), "epochs": 2, "ablation_epochs": 2, "hidden": 16,
                                 "n_experts": 3, "ablation_seeds": (0,)}
    run = _run(s)
    baselines = {"kmeans_accuracy": 0.51, "latent_kmeans_accuracy": 0.61}
    half, res, ablation = exp.half_results(run, {"mnist": {"metrics": baselines}})
    assert half.settings == moe_settings.half_budget(s) and half.settings["epochs"] == 1
    m = res["mnist"]
    assert len(m["history"]) == 1 and "iwae" not in m["metrics"]  # half the epochs; no likelihoods
    assert {k: m["metrics"][k] for k in baselines} == baselines and 0 <= m["metrics"]["accuracy"] <= 1
    assert [r["balance"] for r in ablation] == ["none"] and ablation[0]["images"] == 1 * 1000  # 1 epoch of 1,000
    claims = exp.claims(half, res, ablation, [], calibrated=True)
    assert [c.kind for c in claims] == ["paper", "paper", "paper"]
    assert claims[2].compute is None  # no side with balancing to compare at half the budget


@pytest.mark.parametrize("latent, pixels", [(0.59, 0.55), (0.48, 0.55)])
def test_the_manager_must_beat_the_stronger_k_means_baseline_whichever_it_is(latent, pixels):
    """Reproduced above both baselines, partly above the weaker: on Fashion-MNIST pixels beat the latent means."""
    from lmvae_core.results.claims import NOT_REPRODUCED, PARTLY, REPRODUCED

    results, ablation, beyond = _inputs()
    for r in results.values():
        r["metrics"] |= {"kmeans_accuracy": pixels, "latent_kmeans_accuracy": latent}
    out = exp.claims(_run(), results, ablation, beyond, calibrated=True)
    judged = [x for x in out if "Hungarian accuracy" in x.claim]
    assert len(judged) == 2  # MNIST and Fashion-MNIST
    for c in judged:
        assert (c.rule.threshold, c.rule.partly) == (max(latent, pixels), min(latent, pixels)), c.claim
        between = (latent + pixels) / 2
        assert [c.rule.judge(v) for v in (0.6, between, 0.4)] == [REPRODUCED, PARTLY, NOT_REPRODUCED]


@pytest.mark.parametrize("kmeans, threshold", [(0.80, 0.85), (0.88, 0.88)])
def test_the_mixture_prior_must_clear_the_bar_and_latent_k_means_with_as_many_clusters(kmeans, threshold):
    """The literature's 0.85 alone: k-means on latent means reached it in fidelity/beyond_the_post.json, so the
    measured baseline with the same number of clusters raises the bar where it is higher."""
    results, ablation, _ = _inputs()
    prior = {"accuracy": 0.2, "many_to_one": 0.87, "clusters_used": 50}
    beyond = [{"components": 50, "latent k-means": {"accuracy": 0.2, "many_to_one": kmeans, "clusters_used": 50},
               "GMM initialisation": prior, "mixture-prior VAE": prior}]
    c = exp.claims(_run(), results, ablation, beyond, calibrated=True)[-1]
    assert c.claim.startswith("Beyond the post") and c.rule.threshold == threshold
    assert c.verdict == ("reproduced" if kmeans < 0.87 else "not reproduced")
