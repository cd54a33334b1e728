# %% [markdown]
# # 04 — OCM: task-free continual VAE learning by online cooperative memorization
#
# Fei Ye and Adrian G. Bors, *Continual Variational Autoencoder Learning via Online Cooperative
# Memorization*, ECCV 2022 (arXiv 2207.10131); official code dtuzi123/OVAE (TensorFlow).
#
# The data arrive as a **task-free stream**: fixed-size batches of 64 images, sorted by class, with no task
# labels and no boundaries, seen once. Every batch enters a **short-term memory (STM)**; the VAE trains on
# STM u LTM after every arriving batch. When the STM is full, samples pass into the **long-term memory
# (LTM)** by a kernel score on the encoder means (all components' means concatenated): each STM sample's
# mean kernel similarity to the LTM, compared with lambda1, at most 14 per round; the STM is then cleared.
# **Dynamic-OCM** adds a component when the memory's IWAE log-likelihood R moves by more than lambda2
# between rounds, freezes the earlier components (their parameters leave the optimiser) and clears the LTM.
# Components share the first encoder and decoder layers; all components are evaluated in one stacked
# computation. The baseline **VAE-ELBO-Random** keeps a reservoir-sampled memory of the same size.
#
# **Selection rule.** The supplement's Algorithm 2 (step 12) adds an STM sample when its mean RBF similarity
# to the LTM is *above* lambda1, and Appendix E reports that a larger lambda1 gives a smaller memory, which holds
# only in that direction. The main runs use that rule with the paper's kernel (alpha 10) and lambda1 = 0.6 (the
# supplement's setting); the official code's kernel with lambda1 = 0.35, and a "diverse" variant (keep samples
# *far* from the LTM, lambda1 = 0.9: this notebook's earlier default, not a paper value) are compared in
# section 6. Smaller differences from the official code are options of `OCMConfig`: `order="code"` (R measured
# before the selection, the LTM cleared before this round's selections, the STM firing once it exceeds 512
# instead of at 512) and `embed_binarized` (on by default, as the code: embeddings of a Bernoulli sample of the
# images). On a short run (Dynamic-ELBO-OCM, lambda2 10, at most 5 components, a 10k-image split-MNIST stream,
# 1 pass per arriving batch, two seeds; `benchmarks/fidelity/04_ocm_code_order.json`, means in
# `04_ocm_summary.json`) neither moves the result beyond the spread between seeds (the default's two seeds:
# -176.6 and -167.4 nats): the code's order +4.8 and -1.6 nats against the default, seed by seed, grey
# embeddings -1.7 and +2.8. In the same runs (3-4 components) the same-draw choice overstated the re-drawn
# value by at most 0.17 nats on average, and the best component per image beat the uniform mixture by 1.1-1.2
# nats (the bound is log K).
#
# **What a number can decide.** Every claim records the run's optimiser steps against the official code's
# schedule (937 arriving batches x 100 passes over STM u LTM: 1.56M steps of a 50-sample ELBO for a 60k
# stream), the calibration of the network (section 0) and a 95% interval over seeds; a run that is too short,
# uncalibrated or undecided is `not comparable`, and the claims table says why.
#
# Model: `lmvae_core.models.ocm` (`OCM`, `OCMConfig`); the online procedure: `lmvae_core.continual.OCMLearner`,
# run by the package's stream driver; experiments: `lmvae_core.experiments.ocm`. Labels are used for
# evaluation and memory histograms only.

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
from lmvae_core.experiments import ocm as exp
from lmvae_core.experiments import ocm_claims as claims_mod
from lmvae_core.results import plots

run = setup("04_ocm", profile, seed, device, data_root, out_dir, force, progress,
            exp.SETTINGS, offline=offline, executor=executor)
S = run.settings
print(run)
print(S)
display(Markdown(
    f"**Profile `{run.profile}`.** Stream: {S['stream_limit'] or 'all'} training images per stream (shared "
    f"among its datasets, class-balanced within each), batches of {S['batch_size']}; {S['epochs_per_batch']} pass(es) over STM u LTM per arriving "
    f"batch (the paper: 100); STM {S['stm_size']}, at most {S['per_round']} per round, LTM capacity "
    f"{S['ltm_capacity']}; ELBO with {S['train_samples']} sample(s), IWAE-{S['iwae_samples']} "
    f"(the paper: 50); lr {S['lr']}; test log-likelihood IWAE-{S['eval_k']} on "
    f"{S['eval_n'] or 'all'} test images; seeds {list(S['seeds'])}. Selection: {S['direction']} rule, "
    f"{S['kernel']} kernel, lambda1 {S['lambda1']}, order {S['order']}."
    + ("" if run.profile == "paper" else " These are reduced settings: the numbers below are not the paper's setting.")))

# %% [markdown]
# ## The runs
# Every run of the notebook, as two grids on the executor (on a cluster no worker waits at the end of each
# table): first the runs that need no other (Tables 1 and 3, the selection rules, the ablations, the
# calibration VAE), then the reservoir runs of equal memory and the i.i.d. baselines, which read the memory
# size and step count of a VAE-ELBO-OCM run. The sections below load them from the cache. The i.i.d.
# baseline and the official code's selection rule run at the seeds `iid_seeds` and `selection_seeds` give:
# no claim reads them.

# %%
exp.sweep(run)

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
# `ll_best_same_draw`, the choice and the value from one draw (this notebook's earlier report, which
# overstates by up to log K); `ll_mixture`, the uniform mixture of the components (a valid density, the number
# to compare across models); `ll_by_recon`, the component chosen by reconstruction error. Memory = LTM size at
# the end of the stream; `steps` = optimiser steps. The row **VAE-ELBO-iid (same steps)** trains the same
# network on the stream's images in random order for as many steps as VAE-ELBO-OCM: what the schedule alone
# gives, without stream order or memory.

# %%
per_run, results = exp.table_runs(run, S["streams"])
run.out.table(per_run, "table1_per_run")
table1 = exp.summarise(per_run)
run.out.table(table1, "table1")
table1.round(2)

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
# label (20) in the histograms. The IWVAE row is not in the paper's Table 3.

# %%
per_run_cross, results_cross = exp.table_runs(run, ["cross"], exp.CROSS_METHODS, seeds=S["cross_seeds"])
table3 = exp.summarise(per_run_cross)
run.out.table(table3, "table3_cross_domain")
table3.round(2)

# %% [markdown]
# ## 3. The memory along the stream (Dynamic-ELBO-OCM, first seed)
# Top: LTM size per arriving batch, vertical lines where a component was added (the LTM is cleared then).
# Bottom: the LTM's class histogram after each selection round (labels for evaluation only). Labels:
# MNIST 0-9, Fashion 10-19, Omniglot 20.

# %%
shown = [s for s in (*S["streams"], "cross")]
fig, axes = plt.subplots(2, len(shown), figsize=(4.5 * len(shown), 6), squeeze=False)
for j, stream in enumerate(shown):
    res = (results_cross if stream == "cross" else results).get((stream, "Dynamic-ELBO-OCM", S["seeds"][0]))
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
fig, axes = plt.subplots(1, len(S["streams"]), figsize=(4.5 * len(S["streams"]), 3), squeeze=False)
for ax, stream in zip(axes[0], S["streams"]):
    for method in [m for m in ("VAE-ELBO-Random", "VAE-ELBO-OCM") if (stream, m, S["seeds"][0]) in results]:
        labels = results[(stream, method, S["seeds"][0])]["memory_labels"].numpy()
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
for stream in (*S["streams"], "cross"):
    res = (results_cross if stream == "cross" else results).get((stream, "Dynamic-ELBO-OCM", S["seeds"][0]))
    if res is None:  # the run failed (listed above)
        continue
    model = exp.rebuild(res, run.device)
    _, test = exp.load_stream(run, stream, S["stream_limit"])
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
    default_value = {"lambda1": S["lambda1"], "lambda2": S["lambda2"], "stm_size": S["stm_size"]}[name]
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
# end up in the LTM, and the entropy of its class histogram.
#
# Measured on a short CPU run (a 10k-image split-MNIST stream, 1 pass over STM u LTM per arriving batch,
# 1,091 optimiser steps, IWAE-50 on 1,000 test images, two seeds; `benchmarks/fidelity/04_ocm_selection.json`,
# means in `04_ocm_summary.json`): Algorithm 2 -144.3 nats, the official code's setting -145.1, the diverse
# variant -141.4 (diverse minus Algorithm 2: +4.1 and +1.7 nats for the two seeds). All three admitted the
# cap of 14 samples per round (memory 266, all 10 classes), so on this schedule they differ in *which* samples
# they keep, not how many. The audit saw the same sign on a 20k stream (-123.4 diverse against -125.6
# similar). Both are far below the paper's schedule, so neither decides which rule is better at 1.56M steps.

# %%
selection = exp.selection_study(run, S["streams"])
run.out.table(selection, "selection_rules")
display(selection.round(3))
display(selection.groupby("rule")[["ll_best", "ll_mixture", "memory", "classes_in_memory", "memory_entropy"]]
        .mean().round(3))

# %% [markdown]
# ## 7. Claims
# Each Table 1/3 number is judged *within 5 nats* of the paper's (partly: within 15); orderings the paper
# reports are judged on our own differences, paired by seed (reproduced at >= 0, partly at >= -2 nats). Each
# claim carries the run's optimiser steps against the official code's 1.56M (per 60k images): absolute numbers
# and dynamic against one component need half of that schedule, orderings of memory rules a quarter, the
# memory-size claim a tenth (`lmvae_core/experiments/ocm_claims.py` says why). Below that, or with the
# calibration missed, or with a 95% interval over seeds that spans the criterion, the verdict is
# `not comparable` and the `why` column says which.

# %%
claims = claims_mod.claims(pd.concat([per_run, per_run_cross]), selection, abl, run.profile, cal.met, S["lambda1"])
table = run.out.claims(claims, run.notebook)
display(Markdown(table.to_markdown(index=False)))

# %% [markdown]
# ## What was and was not reproduced
# Read the verdicts above: they are recomputed on every run. The committed outputs come from the
# `quick` profile, which is not the paper's setting: 20,000 images per stream (class-balanced, shared
# among a stream's datasets), one pass over STM u LTM per arriving batch instead of one hundred, a larger
# learning rate, a 1-sample ELBO and IWAE-5 instead of 50 samples, Dynamic-OCM's R on a 1-sample bound
# instead of IWAE-1000 (measured on split MNIST, seed 0, against 10 samples: the same expansions, 0.5 nats
# lower, 37% less training time), an expansion threshold lambda2 raised to match how much R moves from
# training progress alone on this short schedule, three seeds (one for the i.i.d. baseline and the
# official code's selection rule) and IWAE-50 on 500 test images. The two-dataset and cross-domain streams
# had 20,000 images per dataset (36,825 and 40,455) in the previous quick run; at 20,000 per stream their
# rows lost 6 to 24 nats (Dynamic-ELBO-OCM the most: -195.5 to -219.4 on split MNIST-Fashion), and every
# ordering the claims read kept its sign (`lmvae_core/experiments/ocm.py`, quick settings).
#
# **Why the verdicts are `not comparable` on short schedules.** An earlier version of this notebook
# judged "kernel selection beats the reservoir" and "dynamic beats one component" from a few hundred Adam
# steps, thousands of times fewer than the official code's 1.56M; at such a budget the i.i.d. row (the same
# network and steps, no stream, no memory) shows what the schedule alone gives, and an ordering that the
# i.i.d. row matches says nothing about the memory. Dynamic-OCM loses on short schedules by construction:
# each expansion starts a component from scratch, with the shared layers frozen and the LTM emptied. Every
# claim now carries its schedule, and a run below the share a claim needs is `not comparable` by computation.
#
# **What changed, and why (issue 11, items 10-13).**
# - The selection rule is now the supplement's Algorithm 2 (add samples whose similarity to the LTM is above
#   lambda1 = 0.6, RBF kernel, alpha 10). The earlier default, the "diverse" rule with lambda1 = 0.9, is not a
#   paper value; it and the official code's setting (code kernel, 0.35) are compared in section 6: on a short
#   run the diverse variant scored higher (section 6 gives the numbers), at a schedule that cannot decide it.
# - The reported log-likelihood re-draws the estimate of the chosen component (the official code does the
#   same); choosing and reporting with the same draw overstated it (`likelihoods` table). The uniform
#   mixture is reported beside it, as a density comparable across models.
# - The official code's order (R before the selection, the LTM cleared before this round's selections, the
#   STM firing once it exceeds 512) is an option, `order="code"`; the default follows Algorithm 2.
#   Embeddings are taken on binarised images, as the code does.
#
# Each lambda1 belongs to its kernel: the scores depend on the kernel and on the scale of the encoder means.
# Split CIFAR-10 (Table 2, IS/FID) is not run here. The `paper` profile keeps the full schedule (100 passes per
# arriving batch, lr 1e-4, 50 samples, IWAE-1000) and needs a GPU.
