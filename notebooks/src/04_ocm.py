# %% [markdown]
# # 04 — OCM: task-free continual VAE learning by online cooperative memorization
#
# Fei Ye and Adrian G. Bors, *Continual Variational Autoencoder Learning via Online Cooperative
# Memorization*, ECCV 2022 (arXiv 2207.10131); official code dtuzi123/OVAE (TensorFlow).
#
# ## Method
# The data arrive as a **task-free stream**: fixed-size batches sorted by class, with no task labels and no
# boundaries, each seen once. Every arriving batch enters a **short-term memory** $\mathcal M_S$ (STM), and after every
# arriving batch the newest VAE component trains on $\mathcal M_S \cup \mathcal M_L$, $\mathcal M_L$ the **long-term memory**
# (LTM), with $S$ samples $z_s \sim q(z\mid x)$ and the importance weights
# $w_s = p(x\mid z_s)\,p(z_s) / q(z_s\mid x)$, on either bound:
#
# $$\mathcal L_{\mathrm{ELBO}}(x) = \frac1S \sum_{s=1}^{S} \log w_s \quad\text{(VAE-ELBO-OCM)}, \qquad
#   \mathcal L_{\mathrm{IW}}(x) = \log \frac1S \sum_{s=1}^{S} w_s \quad\text{(VAE-IWVAE50-OCM)}.$$
#
# **Selection.** When the STM is full, each STM sample $x$ is embedded as $e(x)$, the encoder means of all
# components concatenated (of a Bernoulli sample of the image), and scored by its mean kernel similarity to the LTM,
#
# $$\kappa(x) = \frac{1}{|\mathcal M_L|} \sum_{y \in \mathcal M_L} k\big(e(x), e(y)\big), \qquad
#   k(a, b) = \exp\!\Big(-\frac{\|a - b\|^2}{2\alpha^2}\Big) \ \text{(Algorithm 2)} \quad\text{or}\quad
#   \exp\!\Big(-\frac{\|a - b\|}{\sqrt2\,\alpha}\Big) \ \text{(official code)}.$$
#
# The samples with $\kappa(x) > \lambda_1$ pass into the LTM, highest first, at most a fixed number per round and never
# beyond the LTM's capacity; the STM is then cleared.
#
# **Dynamic-OCM.** Each round measures $R$, the mean IWAE log-likelihood of $\mathcal M_S \cup \mathcal M_L$ averaged over the
# components. If $|R - R_{\mathrm{last}}| > \lambda_2$ and fewer than the maximum number of components exist, a new
# component is added, every earlier component (and the shared first layers) is frozen and leaves the optimiser, and
# the LTM is cleared. Components share the first encoder and decoder layers and are evaluated in one stacked
# computation.
#
# **Baseline.** VAE-ELBO-Random keeps a reservoir-sampled memory of the same final size as VAE-ELBO-OCM's and
# trains for the same optimiser steps: a reservoir fills within the first rounds while OCM's LTM grows slowly, so
# each arriving batch trains on the STM and a random draw from the reservoir as large as OCM's LTM was then
# (`StepMatchedReservoir` in `lmvae_core/papers/ocm/runs.py`).
#
# **Evaluation.** The test log-likelihood of the best component per image, its value re-drawn with an independent
# IWAE draw, beside the uniform mixture of the components, $\log \frac1C \sum_c p_{\theta_c}(x)$.
#
# ## Claims this notebook tests
# - Each method's test log-likelihood on split MNIST, split Fashion-MNIST, split MNIST-Fashion and the cross-domain
#   stream is near the paper's (Tables 1 and 3).
# - Kernel selection beats a reservoir memory of the same final size at the same optimiser steps.
# - Dynamic expansion beats one component.
# - Algorithm 2's rule (add samples similar to the LTM) is at least as good as a rule that keeps diverse samples.
# - A larger $\lambda_1$ gives a smaller memory, and the LTM of Algorithm 2 covers the stream's classes.
#
# Every claim says what it is (`kind`: a statement of the paper, with where it says it, or a check beyond the paper)
# and records the run's optimiser steps against the official code's schedule, the calibration of the network
# (section 0), a 95% interval over seeds, the same value from a second run at half the budget, and, for a
# comparison, both sides' steps and real images. A run that is too short, uncalibrated, undecided, still moving
# between half and full budget, or at unequal compute is `not comparable`, and the claims table says why
# (section 7).
#
# Model: `lmvae_core.models.ocm` (`OCM`, `OCMConfig`); the online procedure: `lmvae_core.continual.OCMLearner`, run by
# the package's stream driver; experiments: `lmvae_core.papers.ocm`. Labels are used for evaluation and memory
# histograms only.

# %% tags=["parameters"]
import os
# smoke | quick | paper | auto (paper on a GPU, quick otherwise)
profile = os.environ.get("LMVAE_PROFILE", "auto")
seed = 0
# auto | cpu | cuda | cuda:N
device = "auto"
# None: $LMVAE_DATA, else <repo>/data
data_root = None
# None: figures/ for quick and paper, a git-ignored folder for smoke
out_dir = None
force = False
progress = True
# True: never download missing datasets (same as LMVAE_OFFLINE=1)
offline = False
# None: serial here (or $LMVAE_DASK_SCHEDULER); 'local': one worker per core/GPU; 'tcp://host:8786': a cluster
executor = None

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from lmvae_core.experiments.calibration import calibration_frame
from lmvae_core.experiments.common import setup
from lmvae_core.papers.ocm import experiments as exp
from lmvae_core.papers.ocm import claims as claims_mod
from lmvae_core.results import plots

run = setup("04_ocm", profile, seed, device, data_root, out_dir, force, progress,
            exp.SETTINGS, offline=offline, executor=executor)
S = run.settings
print(run)
print(S)
display(Markdown(
    f"**Profile `{run.profile}`.** Stream: {S.stream_limit or 'all'} training images per stream (shared "
    f"among its datasets, class-balanced within each), batches of {S.batch_size}; {S.epochs_per_batch} pass(es) over STM u LTM per arriving "
    f"batch (the paper: 100); STM {S.stm_size}, at most {S.per_round} per round, LTM capacity "
    f"{S.ltm_capacity}; ELBO with {S.train_samples} sample(s), IWAE-{S.iwae_samples} "
    f"(the paper: 50); lr {S.lr}; test log-likelihood IWAE-{S.eval_k} on "
    f"{S.eval_n or 'all'} test images; seeds {list(S.seeds)}. Selection: {S.direction} rule, "
    f"{S.kernel} kernel, lambda1 {S.lambda1}, order {S.order}."
    + ("" if run.profile == "paper" else " These are reduced settings: the numbers below are not the paper's setting.")))

# %% [markdown]
# The options `order="code"` and `embed_binarized` on a short run, from the committed benchmark file:

# %%
display(Markdown(exp.fidelity_text("code_order")))

# %% [markdown]
# ## The runs
# Every run of the notebook, as two grids on the executor (on a cluster no worker waits at the end of each
# table): first the runs that need no other (Tables 1 and 3, the selection rules, the ablations, the memory
# study, the calibration VAE), then the reservoir runs of equal memory and steps and the i.i.d. baselines, which read
# the memory size and steps of a VAE-ELBO-OCM run. The same grids hold the runs at half the budget that the
# claims read (section 7). The sections below load them from the cache. The i.i.d. baseline and the official
# code's selection rule run at the seeds `iid_seeds` and `selection_seeds` give: no claim reads them.

# %%
exp.sweep(run, half=True)

# %% [markdown]
# ## 0. Calibration: the network trained jointly
# The OCM network's shape (784-200-200-50, Bernoulli) trained jointly on MNIST in this profile, next to the
# same network's measured reference (10 epochs on full MNIST, IWAE-500). If it misses its reference by more
# than the tolerance, every claim below is `not comparable`: suspect the code or the schedule before the paper.

# %%
cal = claims_mod.calibration(run)
run.out.table(calibration_frame([cal]), "calibration")
calibration_frame([cal])

# %% [markdown]
# ## 1. Table 1: split MNIST, split Fashion, split MNIST-Fashion
# One pass over each task-free stream per method and seed (cached by the full configuration). The test
# log-likelihood `ll_mean` (`ll_best` per run) takes, for each test image, the component with the highest
# IWAE bound and reports that component's bound from a *fresh* draw, as the official code does. Beside it:
# `ll_best_same_draw`, the choice and the value from one draw (which overstates by up to log K); `ll_mixture`, the
# uniform mixture of the components (a valid density, the number
# to compare across models); `ll_by_recon`, the component chosen by reconstruction error. Memory = LTM size at
# the end of the stream; `steps` = optimiser steps. VAE-ELBO-Random holds VAE-ELBO-OCM's final memory and
# trains for its steps (the cell below the table checks both). The row **VAE-ELBO-iid (same steps)** trains the
# same network on the stream's images in random order for as many steps as VAE-ELBO-OCM: what the schedule
# alone gives, without stream order or memory.

# %%
per_run, results = exp.table_runs(run, S.streams)
run.out.table(per_run, "table1_per_run")
table1 = exp.summarise(per_run)
run.out.table(table1, "table1")
table1.round(2)

# %%
def reservoir_check(per_run: pd.DataFrame) -> str:
    """Memory, steps and the paired difference of VAE-ELBO-OCM and the reservoir, per stream, from the runs."""
    lines = []
    for stream, g in per_run.groupby("stream", sort=False):
        a = g[g.method == "VAE-ELBO-OCM"].set_index("seed")
        b = g[g.method == "VAE-ELBO-Random"].set_index("seed")
        seeds = a.index.intersection(b.index)
        if not len(seeds):
            continue
        d = (a.ll_best[seeds] - b.ll_best[seeds]).sort_index()
        lines.append(f"- {exp.STREAM_TITLES[stream]}: final memory {a.memory[seeds].mean():.0f} (OCM) and "
                     f"{b.memory[seeds].mean():.0f} (reservoir); optimiser steps {a.steps[seeds].mean():.0f} and "
                     f"{b.steps[seeds].mean():.0f}; OCM minus reservoir {d.mean():+.1f} nats (seeds: "
                     f"{', '.join(f'{x:+.1f}' for x in d)})")
    return "\n".join(lines)


display(Markdown("**VAE-ELBO-OCM against the reservoir at equal memory and steps** (means over seeds):\n\n"
                 + reservoir_check(per_run)))

# %%
likelihoods = claims_mod.headline(per_run)
run.out.table(likelihoods, "likelihoods")
likelihoods.round(2)

# %%
paper = {(s, m): v for s, m, v in zip(table1.stream, table1.method, table1.paper_ll)}
fig = plots.bars_over_seeds(per_run.assign(stream=per_run.stream.map(exp.STREAM_TITLES)), "method", "ll_best",
                            panel="stream", reference=paper, ylabel="test log-likelihood (nats)")
run.out.figure(fig, "table1_bars");

# %% [markdown]
# ## 2. Table 3: cross-domain stream MNIST -> Fashion -> Omniglot
# Omniglot (105x105, drawers 1-15 for training) is resized to 28x28 on load; all its characters carry one
# label (20) in the histograms. The poster's Table 3 has the four rows of Table 1: VAE-ELBO-Random (memory
# 3.0K), VAE-ELBO-OCM (2.0K), VAE-IWVAE50-OCM (2.0K) and Dynamic-ELBO-OCM (1.5K, 11 components).

# %%
per_run_cross, results_cross = exp.table_runs(run, ["cross"], exp.CROSS_METHODS, seeds=S.cross_seeds)
table3 = exp.summarise(per_run_cross)
run.out.table(table3, "table3_cross_domain")
display(table3.round(2))
display(Markdown(reservoir_check(per_run_cross)))

# %% [markdown]
# ## 3. The memory along the stream (Dynamic-ELBO-OCM, first seed)
# Top: LTM size per arriving batch, vertical lines where a component was added (the LTM is cleared then).
# Bottom: the LTM's class histogram after each selection round (labels for evaluation only). Labels:
# MNIST 0-9, Fashion 10-19, Omniglot 20.

# %%
shown = [s for s in (*S.streams, "cross")]
fig, axes = plt.subplots(2, len(shown), figsize=(4.5 * len(shown), 6), squeeze=False)
for j, stream in enumerate(shown):
    res = (results_cross if stream == "cross" else results).get((stream, "Dynamic-ELBO-OCM", S.seeds[0]))
    if res is None:  # the run failed (listed above)
        continue
    tr = exp.memory_trace(res)
    ax = axes[0, j]
    ax.plot(tr["batch"], tr["ltm"], lw=1.2)
    for b in tr["expansions"]:
        ax.axvline(b, color="r", ls="--", lw=0.8)
    ax.set_title(f"{exp.STREAM_TITLES[stream]}: {res['components']} component(s)", fontsize=9)
    ax.set_xlabel("arriving batch")
    ax.set_ylabel("LTM size")
    ax = axes[1, j]
    counts = tr["class_counts"]
    if len(counts):
        ax.stackplot(tr["rounds"], counts.T, labels=[str(c) for c in range(counts.shape[1])],
                     colors=plt.cm.tab20(np.arange(counts.shape[1]) % 20))
    for b in tr["expansions"]:
        ax.axvline(b, color="r", ls="--", lw=0.8)
    ax.set_xlabel("arriving batch (selection rounds)")
    ax.set_ylabel("LTM samples per class")
    ax.legend(fontsize=5, ncol=3, loc="upper left")
run.out.figure(fig, "memory_along_stream");

# %%
fig, axes = plt.subplots(1, len(S.streams), figsize=(4.5 * len(S.streams), 3), squeeze=False)
for ax, stream in zip(axes[0], S.streams):
    for method in [m for m in ("VAE-ELBO-Random", "VAE-ELBO-OCM") if (stream, m, S.seeds[0]) in results]:
        labels = results[(stream, method, S.seeds[0])]["memory_labels"].numpy()
        n = 20 if stream == "mnist_fashion" else 10
        ax.bar(np.arange(n) + (0.2 if method.endswith("OCM") else -0.2), np.bincount(labels, minlength=n)[:n], 0.4,
               label=method)
    ax.set_title(f"{exp.STREAM_TITLES[stream]}: final memory", fontsize=9)
    ax.set_xlabel("class")
    ax.legend(fontsize=7)
run.out.figure(fig, "final_memory_histograms");

# %% [markdown]
# ## 4. Samples and reconstructions per component (Dynamic-ELBO-OCM)
# Each row is one component: prior samples (the same z for every row), then its reconstructions of the
# same test images (first row of each figure: the test images). Earlier components keep what they learnt
# early in the stream because they are frozen.

# %%
for stream in (*S.streams, "cross"):
    res = (results_cross if stream == "cross" else results).get((stream, "Dynamic-ELBO-OCM", S.seeds[0]))
    if res is None:  # the run failed (listed above)
        continue
    model = exp.rebuild(res, run.device)
    _, test = exp.load_stream(run, stream, S.stream_limit)
    pick = torch.linspace(0, len(test) - 1, 10).long().to(test.x.device)
    samples = model.sample_per_component(10, seed=run.seed)
    recon = model.reconstruct(test.x[pick])
    k = len(model)
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.7 * (k + 1) + 0.6))
    plots.show_images(samples.flatten(0, 1), nrow=10, ax=axes[0], title=f"{exp.STREAM_TITLES[stream]}: samples",
                      row_labels=[f"comp. {i}" for i in range(k)])
    plots.show_images(torch.cat([test.x[pick].unsqueeze(0), recon]).flatten(0, 1).cpu(), nrow=10, ax=axes[1],
                      title="test images and reconstructions", row_labels=["data"] + [f"comp. {i}" for i in range(k)])
    run.out.figure(fig, f"components_{stream}")
    plt.show()

# %% [markdown]
# ## 5. Ablations (split MNIST, shorter stream, one seed)
# lambda1 (selection threshold) and the STM size on VAE-ELBO-OCM, lambda2 (expansion threshold) on
# Dynamic-ELBO-OCM, one at a time; the `default` rows are each method's default configuration on the
# same stream (the point marked with a square in each panel).

# %%
abl = exp.ablations(run, "mnist")
run.out.table(abl, "ablations")
display(abl[["parameter", "value", "method", "ll_best", "ll_mixture", "memory", "components", "steps"]].round(2))
fig, axes = plt.subplots(1, 3, figsize=(13, 3))
for ax, name in zip(axes, ("lambda1", "stm_size", "lambda2")):
    g = abl[abl.parameter == name]
    base = abl[(abl.parameter == "default") & (abl.method == g.method.iloc[0])].iloc[0]
    default_value = {"lambda1": S.lambda1, "lambda2": S.lambda2, "stm_size": S.stm_size}[name]
    xs = np.array([*g.value, default_value], dtype=float)
    order = np.argsort(xs)
    lls = np.array([*g.ll_best, base.ll_best])[order]
    mem = np.array([*g.memory, base.memory])[order]
    comps = np.array([*g.components, base.components])[order]
    ax.plot(xs[order], lls, marker="o")
    ax.plot([default_value], [base.ll_best], "ks", ms=7, mfc="none")
    ax.set_xlabel(name)
    ax.set_ylabel("test log-likelihood")
    ax.set_title(g.method.iloc[0], fontsize=9)
    for x_, l_, m_, c_ in zip(xs[order], lls, mem, comps):
        ax.annotate(f"mem {m_:.0f}, K {c_:.0f}", (x_, l_), fontsize=7)
run.out.figure(fig, "ablations");

# %% [markdown]
# ## 6. Selection rules: Algorithm 2, the official code's setting, and the diversity variant
# VAE-ELBO-OCM with three rules, at most 14 per round in each: **paper (Algorithm 2)**, keep samples whose
# mean RBF similarity to the LTM is above 0.6, most similar first (the default); **official code**, the same
# direction with the code's kernel exp(-d / (sqrt(2) alpha)) and lambda1 = 0.35; **diverse**, keep samples
# whose similarity (code kernel) is *below* 0.9, least similar first. Besides the likelihood: how many classes
# end up in the LTM, and the entropy of its class histogram. The committed short-run benchmark of the three
# rules, read from its file, comes first; it is far below the paper's schedule, so it does not decide which rule
# is better at 1.56M steps.

# %%
display(Markdown(exp.fidelity_text("selection")))

# %%
selection = exp.selection_study(run, S.streams)
run.out.table(selection, "selection_rules")
display(selection.round(3))
display(selection.groupby("rule")[["ll_best", "ll_mixture", "memory", "classes_in_memory", "memory_entropy"]]
        .mean().round(3))

# %% [markdown]
# ## 6b. The memory study: class coverage and lambda1 at a tenth of the official steps
# The claims on the memory (the LTM of Algorithm 2 covers the stream's classes; a larger lambda1 gives a smaller
# memory) are about the selection rule on a trained encoder, so they need a tenth of the official code's steps
# (`papers.ocm.claims.MIN_MEMORY`), which the runs above reach a fraction of a percent of. VAE-ELBO-OCM runs again,
# at one seed, on every training image of the stream, with as many passes over STM u LTM per arriving batch as
# reach the study's share of the official steps (`exp.memory_study_settings`): split MNIST at the default
# lambda1 and at the larger one the settings name, split Fashion at the default. The half-budget runs halve the
# passes. In the paper profile these are the main runs themselves.

# %%
memory = exp.memory_study(run)
run.out.table(memory, "memory_study")
display(memory.round(3))
fig = plots.memory_class_histograms(memory, title=lambda r: f"{exp.STREAM_TITLES[r.stream]}, lambda1 = {r.lambda1:g}")
run.out.figure(fig, "memory_study");

# %% [markdown]
# ## 7. Claims
# How a verdict is decided:
# - **kind**: `paper` rows test a statement of the paper (`where`: poster Table 1 or 3, the supplement);
#   `beyond` rows test a variant the paper does not run (Algorithm 2 against the diversity rule). Only `paper`
#   rows count as reproductions.
# - **rule**: each Table 1/3 number within 5 nats of the paper's (partly: within 15); orderings the paper reports
#   are judged on our own differences, paired by seed (reproduced at >= 0, partly at >= -2 nats).
# - **schedule**: the run's optimiser steps against the official code's 1.56M per 60k images; absolute numbers
#   and dynamic against one component need half of it, orderings of memory rules a quarter, the memory-size and
#   class-coverage claims a tenth (`lmvae_core/papers/ocm/claims.py` says why; no share is what a run
#   reaches), which the memory study (section 6b) is run for. The calibration and a 95% interval over seeds that spans the criterion also leave a claim
#   `not comparable`.
# - **half budget**: every claim is measured again in a second run at about half the budget (`exp.half_budget`:
#   half the passes per arriving batch where there are several, else half the stream; the memory study: half
#   its passes). A verdict stands only if
#   that value gives the same verdict and moved by less than the full value's distance to the criterion.
# - **equal compute**: each comparison records both sides' optimiser steps and real images; more than 5% apart
#   without a stated reason makes it `not comparable`. The reason, where given, is the method itself
#   (Dynamic-OCM empties its LTM at an expansion; a selection rule or lambda1 sets the memory's size).

# %%
from lmvae_core.results.claims import with_half_budget

claims = claims_mod.claims(pd.concat([per_run, per_run_cross]), selection, memory, run.profile, cal.met,
                           S.lambda1)
half_run = run.with_settings(exp.half_budget(S))
h_per_run, _, h_cross, _ = exp.tables_for_claims(half_run, iid=False)
h_selection = exp.selection_study(half_run, S.streams, exp.CLAIM_RULES)
half_claims = claims_mod.claims(pd.concat([h_per_run, h_cross]), h_selection, exp.memory_study(run, half=True),
                                run.profile, cal.met, S.lambda1)
claims = with_half_budget(claims, half_claims, how=claims_mod.half_budget_how(S))
table = run.out.claims(claims, run.notebook)
display(Markdown(table.to_markdown(index=False)))

# %%
run.out.figure(plots.value_against_budget(claims), "value_against_budget");

# %%
counts = table.groupby(["kind", "verdict"]).size().unstack(fill_value=0)
display(counts)
why = table[table.verdict == "not comparable"].why.str.split(":").str[0].value_counts()
display(Markdown("**Why claims are not comparable here** (first reason per claim): "
                 + "; ".join(f"{reason}: {n}" for reason, n in why.items()) if len(why) else
                 "Every claim is decided in this run."))

# %% [markdown]
# ## What was and was not reproduced
# Read the verdicts above: they are recomputed on every run. The `quick` profile is not the paper's setting:
# a class-balanced stream of `stream_limit` images (shared among a stream's datasets), one pass over STM u LTM
# per arriving batch instead of one hundred, a larger learning rate, a 1-sample ELBO and IWAE-5 instead of 50
# samples, Dynamic-OCM's R on a 1-sample bound instead of IWAE-1000, an expansion threshold lambda2 raised to
# match how much R moves from training progress alone on this short schedule, three seeds (one for the i.i.d.
# baseline and the official code's selection rule) and IWAE-50 on 500 test images. The measured effect of these
# reductions is recorded beside the quick settings in `lmvae_core/papers/ocm/settings.py`.
#
# **Why the verdicts are `not comparable` on short schedules.** At a few thousand Adam steps, hundreds of times
# fewer than the official code's 1.56M, the i.i.d. row (the same network and steps, no stream, no memory) shows
# what the schedule alone gives, and an ordering that the i.i.d. row matches says nothing about the memory.
# Dynamic-OCM loses on short schedules by construction: each expansion starts a component from scratch, with
# the shared layers frozen and the LTM emptied.
#
# **Deviations from the paper and the official code.**
# - The selection rule is the supplement's Algorithm 2 (add samples whose similarity to the LTM is above
#   lambda1 = 0.6, RBF kernel, alpha 10). The "diverse" rule (lambda1 = 0.9) is not a paper value; it and the
#   official code's setting (code kernel, 0.35) are compared in section 6.
# - The reported log-likelihood re-draws the estimate of the chosen component, as the official code does;
#   choosing and reporting with the same draw overstates it (`likelihoods` table). The uniform mixture is
#   reported beside it, as a density comparable across models.
# - The official code's order (R before the selection, the LTM cleared before this round's selections, the STM
#   firing once it exceeds 512) is an option, `order="code"`; the default follows Algorithm 2. Embeddings are
#   taken on binarised images, as the code does.
# - The reservoir baseline holds VAE-ELBO-OCM's final memory, not the poster's 3.0K, and trains for the same
#   optimiser steps (section 1 shows both).
# - The claims on the memory (class coverage, lambda1) read the memory study (section 6b): in `quick`, one seed,
#   every training image of the stream and the passes per arriving batch that reach 10.5% of the official
#   steps, with the quick profile's learning rate and 1-sample ELBO; the paper's 100 passes and 50 samples are
#   left to the paper profile.
#
# Each lambda1 belongs to its kernel: the scores depend on the kernel and on the scale of the encoder means.
# Split CIFAR-10 (Table 2, IS/FID) is not run here. The `paper` profile keeps the full schedule (100 passes per
# arriving batch, lr 1e-4, 50 samples, IWAE-1000) and needs a GPU.

# %% [markdown]
# ## Deviations
# From the paper and the official code dtuzi123/OVAE. Where a measured effect exists, the file that holds it is
# named; the numbers are not copied here.
# - *Selection rule and kernel.* The supplement's Algorithm 2 (step 12) adds an STM sample when its mean RBF
#   similarity to the LTM is *above* $\lambda_1$, and Appendix E reports that a larger $\lambda_1$ gives a smaller memory,
#   which holds only in that direction. The main runs use that rule with the paper's kernel and the supplement's
#   $\lambda_1$; the official code's kernel with its own $\lambda_1$, and a "diverse" variant (keep samples *far* from the
#   LTM, not a paper setting) are compared in section 6: `figures/04_ocm/selection_rules.md` and
#   `lmvae_core/papers/ocm/fidelity/selection.json`. Why $\lambda_1$ in the supplement's range does not move the memory:
#   `lmvae_core/papers/ocm/fidelity/selection_scores.json`. Each $\lambda_1$ belongs to its kernel: the scores depend on
#   the kernel and on the scale of the encoder means.
# - *Order of the round.* `OCMConfig(order="code")` follows the official code (R measured before the selection, the
#   LTM cleared before this round's selections, the STM firing once it exceeds its size instead of at it); the main
#   runs follow Algorithm 2. Embeddings are taken of binarised images (`embed_binarized`, on by default, as the
#   official code). Both measured on a short run against the spread between seeds:
#   `lmvae_core/papers/ocm/fidelity/code_order.json` (read in the cell after the parameters), its means and paired
#   differences in `lmvae_core/papers/ocm/fidelity/summary.json`.
# - *Reservoir baseline.* The poster's reservoir is larger than OCM's memory; ours holds the same as OCM's and trains
#   for the same steps (`StepMatchedReservoir`). Effect of the size: not measured.
# - *Schedule.* The quick profile runs far fewer optimiser steps than the official code's schedule (many passes over
#   STM u LTM per arriving batch); the `paper` profile keeps the full schedule and needs a GPU. Each claim records
#   its steps and its half-budget value: `figures/04_ocm/claims.md`; the memory study: `figures/04_ocm/memory_study.md`.
# - *Precision and seeds in the paper profile.* Where `benchmarks/ocm_precision.py` measured bf16 or TF32 within 0.3
#   nats of fp32 and faster on the device at hand, the paper profile trains OCM's memory passes in it
#   (`lmvae_core/papers/ocm/precision.py`), and the claims' notes say so with that measurement; on a GPU a method's
#   seeds train as one stacked, graphed computation, each run drawing its own noise (`stack_seeds`). The quick
#   profile trains in fp32, one seed at a time. The measurements: `docs/paper_cost.md`.
# - *Ablations* (`figures/04_ocm/ablations.md`) and the uniform-mixture likelihood beside the best component
#   (`figures/04_ocm/likelihoods.md`) go beyond the paper.
# - *Not run.* Split CIFAR-10 (Table 2, IS/FID).
