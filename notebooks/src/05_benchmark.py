# %% [markdown]
# # 05 — One benchmark for every method, on the same streams
#
# Each paper compares against its own baselines on its own splits with its own metric. Here every method of the
# package runs on the **same task streams**, with the **same network budget** (one 784-H-Z MLP per VAE, expert or OCM
# component), the **same evaluation code** and several seeds, and one table reports them.
#
# ## Methods and streams
# Methods (a registry of `Learner`s in `lmvae_core.papers.benchmark`, all trained by one driver,
# `lmvae_core.continual.run_stream`, with one real-data budget: every task-based method gets the same real batches
# per task and reports the replayed rows it trains on besides): fine-tuned VAE (lower bound); jointly trained VAE
# (upper bound, all data at once); generative-replay VAE (Shin et al. style, generator only); the same with binarized
# regularisation (`BinarizedVAE`, $r > 0$); LGM (student-teacher); L-MVAE; VAE-ELBO-OCM and Dynamic-OCM (task-free); the
# mixture of VAEs with a manager, trained offline on all data (reference).
#
# Streams: split MNIST (5 tasks of 2 classes), MNIST -> Fashion-MNIST, split Fashion-MNIST, and the task-free
# class-sorted MNIST stream. Task-based methods see the tasks in order. OCM sees the same images as one class-sorted
# stream of batches (the tasks' training images concatenated in task order) and is evaluated when the stream crosses a
# task boundary (after the batch in which the boundary falls). On the task-free stream no method is told anything
# about classes: task-based methods get the stream cut into 5 equal consecutive chunks and every method sees each
# image once (one epoch). On a class-balanced subset the chunks are CN-DPM's 2-class stages; on full MNIST (unequal
# class counts) a chunk's training images straddle up to 3 classes, and each class's test images belong to the chunk
# that holds most of its training images, so the chunks' test sets are the 2-class stages and their union is the test
# set, each image once. The joint VAE and the offline mixture see all data at once, for the usual number of epochs, on
# every stream. On the task-free stream that data is split MNIST's (the same training images and the same test sets;
# `test_offline_references_of_the_task_free_stream_are_split_mnists_runs`), so their split MNIST runs are reported for
# it under its name, not trained a second time.
#
# ## Metrics (the same code for all)
# **Log-likelihood** by the IWAE bound with $k$ importance samples, in nats per image (test images binarised once with
# a fixed seed; training data dynamically binarised):
#
# $$\log p(x) \ \ge\ \mathcal L_k(x) = \mathbb E_{z_1, \dots, z_k \sim q(z\mid x)}
#   \Big[\log \frac1k \sum_{i=1}^{k} \frac{p(x\mid z_i)\, p(z_i)}{q(z_i\mid x)}\Big].$$
#
# Mixture models are evaluated as proper densities, $\log \sum_i \pi_i \hat p_i(x)$ with $\hat p_i(x)$ expert $i$'s IWAE-$k$
# estimate (so a lower bound too); $\pi_i$: for L-MVAE the share of tasks each expert serves, for OCM uniform over
# components, for the offline mixture the manager's average routing on the training data. This is not the per-input
# selection of notebooks 01 and 04, which can overstate $\log p(x)$ by up to $\log K$.
#
# **Per-task matrix** $A_{t,j}$: the log-likelihood on task $j$'s test images after training task $t$. The **final
# average** is the log-likelihood on the union of the stream's test sets after the last task $T$; **forgetting** is
#
# $$F = \frac{1}{T-1} \sum_{j=1}^{T-1} \Big(\max_{j \le t < T} A_{t,j} - A_{T,j}\Big),$$
#
# positive when forgotten.
#
# **FID** in the features $\phi$ of a classifier trained on the stream's classes at full size (its test accuracy must
# reach a floor before its features or labels are trusted), between generated and real test images:
#
# $$\mathrm{FID} = \|\mu_g - \mu_r\|^2 + \mathrm{tr}\big(\Sigma_g + \Sigma_r - 2\,(\Sigma_g \Sigma_r)^{1/2}\big).$$
#
# **Fitting capacity** (Lesort et al. 2019): the real-test accuracy of a classifier trained only on generated samples
# labelled by the feature classifier, early-stopped on a held-out part of those samples. Also: parameters at
# inference, stored images, training time and inference time.
#
# ## Claims this notebook tests
# - Methods with replay, memory or experts forget less than fine-tuning.
# - L-MVAE approaches the joint upper bound; Dynamic-OCM's distance to it is measured beside it (not compared in its
#   paper).
# - Generative replay keeps the generator useful (fitting capacity against fine-tuning).
# - Binarized regularisation reduces forgetting under replay.
# - CN-DPM's task-free split MNIST numbers (offline, fine-tune, memory-based and expansion-based NLL), each judged
#   only where our bound, network and schedule are CN-DPM's.

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

from lmvae_core.experiments.common import setup
from lmvae_core.papers.benchmark import experiments as exp
from lmvae_core.metrics import TaskMatrix
from lmvae_core.results import plots

run = setup("05_benchmark", profile, seed, device, data_root, out_dir, force, progress,
            exp.SETTINGS, offline=offline, executor=executor)
S = run.settings
print(run)
print(S)

# %% [markdown]
# ## Profile
# This machine has no GPU, so the committed outputs come from the **quick** profile, whose target is 60 minutes
# on 2 CPU cores (`executor='local'`: one single-threaded Dask worker per core); the measured cold wall time of
# the committed run is in `run_info.json` and the README's run table. Its reductions, all of
# them (the `paper` profile restores them): all training images of each task (`train_per_task` = None; the
# offline Fashion-MNIST has 16,825 of its 60,000) and `test_per_task` test images per task (paper: up to 2000);
# three streams (MNIST -> Fashion, two whole datasets, only in paper); one hidden layer of `hidden` units and
# `latent` latent units per VAE/expert/component (paper: the OCM/IWAE size 200 hidden, 50 latent); `epochs`
# epochs per task, or a stream's own count in `stream_epochs` (paper: 20; quick runs the split streams longer,
# since L-MVAE's gap to the joint VAE was still moving at 2 epochs); IWAE with k = `iwae_k` (paper: 1000); `n_generated` generated images for FID
# (paper: 10000); 3 seeds (paper: 5); OCM with one pass over STM u LTM per arriving batch (paper: 100), a smaller
# memory, at most `ocm.max_components` components and Dynamic-OCM's expansion signal R on a 1-sample bound
# (`ocm.r_samples`; paper: IWAE-1000; a single measurement on split MNIST, described beside the settings in
# `benchmark.py`, found more samples costly and without effect on the expansions); fitting capacity on
# `fc_images` generated images (paper: as many as the stream's training images; section 0 shows the real-data
# ceiling at this size). The feature classifier is trained for `clf_epochs`
# epochs on every training image of the stream's classes (`clf_train_per_task` = None) in every profile but
# smoke. The `seed` parameter shifts the settings' seeds: seed 0 runs the seeds listed, seed 10 each of them plus 10
# (another independent set).
#
# Every claim below states its schedule against this notebook's paper profile (real image passes per task; OCM:
# optimiser steps against the official code's, as notebook 04 counts them) and how its verdict is decided
# (section 5).
#
# One choice differs from notebook 01: L-MVAE runs with `reuse_threshold=None`, one expert per task as in the
# official code. Notebook 01's relative threshold (made for a domain sequence) reuses experts across digit
# classes, whose reconstruction errors differ by less than the threshold allows.

# %%
display(pd.Series({k: v for k, v in S.items() if k != "ocm"}, name=run.profile).to_frame())
display(pd.Series(S.ocm, name="OCM").to_frame())

# %% [markdown]
# ## 0. What the metrics are read against
# The feature classifier's test accuracy per dataset against its floor, the FID of real training images
# against the real test set at the generated sample size (what a perfect generator would score: FID is biased
# upwards at small n), and the fitting capacity of as many real training images as the generated set has (the
# same classifier and early stopping, trained on real instead of generated images). The calibration follows
# the main table.

# %%
features = exp.features_all(run)
feature_table = exp.features_frame(features)
run.out.table(feature_table, "features")
display(Markdown(feature_table.to_markdown(index=False)))

# %% [markdown]
# ## 1. Every method on every stream, every seed
# Each (stream, method, seed) result is cached on disk by the full settings: a re-run reloads it.
# Columns: final log-likelihood on the union of the test sets (IWAE, k = `iwae_k`); forgetting (mean over
# tasks 0..T-2 of the best earlier minus the final log-likelihood; n/a for the offline references); FID from
# `n_generated` samples and fitting capacity from `fc_images`; parameters needed at inference; images stored
# (the joint VAE and the offline mixture need the whole stream; OCM its long-term memory plus the short-term
# buffer); training time (seconds, one CPU thread, evaluation excluded); inference time (the final IWAE-k
# evaluation, per image). `per_run.csv` also records each run's optimiser steps (OCM: its passes over STM u LTM)
# and the real training images it was handed, counted once per pass: the compute the claims compare.

# %%
rows = exp.run_all(run, progress=print if run.progress else None)
per_run = exp.per_run_frame(rows)
run.out.table(per_run, "per_run")
summary = exp.summarise(per_run)
run.out.table(summary, "summary")
main = exp.display_table(summary)
run.out.table(main, "benchmark")
display(Markdown(main.to_markdown(index=False)))

# %% [markdown]
# **Calibration.** First row: this notebook's network trained jointly on full MNIST at the profile's
# `calibration` schedule, against the same network at its reference schedule (measured by `python -m
# lmvae_core.experiments.calibration` and committed; for the quick profile's 784-200-20 network, 10 epochs and
# IWAE-500). More than `tolerance` nats below the reference points at the code, and every claim below is then
# `not comparable`. Second row: the benchmark's own Joint VAE on split MNIST (mean over seeds, IWAE-k) against
# the same reference, which shows how far the benchmark's schedule holds the models back.

# %%
cal = exp.calibration(run, summary)
cal_table = exp.calibration_frame(cal)
run.out.table(cal_table, "calibration")
display(Markdown(cal_table.to_markdown(index=False)))

# %% [markdown]
# ## 2. Ranking
# Ranks by the mean final log-likelihood within each stream, and the mean rank over streams. The sentences are
# written by code: within a stream, methods whose paired 95% interval (over seeds) of the difference to the
# tier's best contains 0 are listed together as not distinguishable.

# %%
ranks = exp.ranking(summary, "final_ll")
run.out.table(ranks.reset_index(), "ranking_loglik")
display(ranks)
sentence = exp.ranking_sentence(summary, "final_ll", per_run)
fc_ranks = exp.ranking(summary, "fitting_capacity")
run.out.table(fc_ranks.reset_index(), "ranking_fitting_capacity")
sentence_fc = exp.ranking_sentence(summary, "fitting_capacity", per_run)
display(Markdown(sentence))
display(Markdown(sentence_fc))
run.out.text(sentence + "\n\n" + sentence_fc + "\n", "ranking");

# %% [markdown]
# ## 3. One figure per stream
# Final log-likelihood, forgetting (task-based and OCM only), FID and fitting capacity, mean ± std over seeds.

# %%
for stream in S.streams:
    fig = exp.stream_figure(summary, stream)
    run.out.figure(fig, f"stream_{stream}")
    plt.show()

# %% [markdown]
# ## 4. Per-task matrices (seed of the first run) and samples
# Row: after task t; column: task j; IWAE log-likelihood (nats). OCM rows are its snapshots at the task
# boundaries of the stream; offline methods have only the final row.

# %%
first = S.seeds[0]
for stream in S.streams:
    chosen = [r for r in rows if r["stream"] == stream and r["seed"] == first]
    n = len(chosen)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.0))
    for ax, r in zip(np.atleast_1d(axes), chosen):
        m = TaskMatrix.from_dict(r["matrix"])
        short = [str(i) for i in range(len(m.task_names))]
        plots.heatmap(m.values, short, short, ax=ax, fmt="{:.0f}", title=r["method"], xlabel="task j",
                      ylabel="after task t")
    fig.suptitle(exp.STREAM_TITLES[stream])
    fig.tight_layout()
    run.out.figure(fig, f"task_matrices_{stream}")
    plt.show()

# %%
for stream in S.streams:
    chosen = [r for r in rows if r["stream"] == stream and r["seed"] == first]
    images = np.concatenate([r["samples"][:10].numpy() for r in chosen])
    fig = plots.show_images(torch.from_numpy(images), nrow=10, row_labels=[r["method"] for r in chosen],
                            title=f"{exp.STREAM_TITLES[stream]}: samples after the whole stream")
    run.out.figure(fig, f"samples_{stream}")
    plt.show()

# %% [markdown]
# ## 5. Claims
# Each claim says what it is (`kind`): `paper` where a paper states it (`where` says where), `derived` where the
# project draws it from several papers (forgetting less than fine-tuning: each method's paper shows it against
# its own fine-tuned baseline; the share over four methods is this benchmark's), `beyond` where no paper makes
# the comparison (Dynamic-OCM against a jointly trained VAE: the OCM paper has no such row). Each verdict is
# computed by the rule in the `criterion` column, and is `not comparable`, with the reason in `why`, when:
# - **the value is still moving**: every claim is measured a second time, in a run at half the budget its
#   schedule counts (`benchmark.half_budget`: half the epochs per task, the same data, seeds and evaluation;
#   the task-based methods and the joint VAE on the split streams, the runs every `paper` claim reads). A
#   `paper` claim stands only if the half-budget value gives the same verdict and moved by less than the full
#   value's distance to the criterion; a `paper` claim without a half-budget value is not decided;
# - **the compute is unequal**: a comparison records both methods' optimiser steps and real images (from the
#   runs) and needs them within 5% of each other. Replay methods train on generated rows on top of the same real
#   batches in the same steps, so they compare at equal compute with fine-tuning; on the task-free stream the
#   continual learners see each image once while the joint VAE trains for the profile's epochs, so a comparison
#   there is unequal;
# - **OCM's schedule is too short**: OCM's budget is its optimiser steps, passes over STM u LTM, against the
#   official code's 100 per arriving batch (`papers.ocm.settings.official_steps`, as notebook 04 counts them), and its
#   claims need half of them (notebook 04's floor);
# - **the measure is not the paper's**: CN-DPM's numbers are a 16-sample ELBO-type bound in bits/dim of its own
#   networks on its own schedule. A CN-DPM claim records both protocols (bound, network, schedule) and has a
#   value only where they match; here they do not, so `ours` is empty (`no measurement`) and the note gives our
#   IWAE value and what differs;
# - the calibration (section 0) is missed, or the 95% interval over seeds spans the criterion.

# %%
from lmvae_core.results.claims import with_half_budget

claims = exp.claims(per_run, S, run.profile, cal, features)
half_run = run.with_settings(exp.half_settings(S))
half_rows = exp.run_all(half_run, progress=print if run.progress else None)
half_per_run = exp.per_run_frame(half_rows)
run.out.table(half_per_run, "per_run_half_budget")
half_claims = exp.claims(half_per_run, half_run.settings, run.profile, cal, features)
claims = with_half_budget(claims, half_claims, how="a second run at half the epochs per task (same data, seeds and "
                                                   "evaluation)")
table = run.out.claims(claims, run.notebook)
display(Markdown(table.to_markdown(index=False)))

# %% [markdown]
# The claims' values at half and at the full budget, with the rule's boundaries dashed (a title in grey: not
# comparable).

# %%
run.out.figure(plots.value_against_budget(claims), "value_against_budget")
plt.show()

# %% [markdown]
# ## What this benchmark does and does not show
# The table above is the result; the ranking sentences and the claims are computed from it, so read them rather
# than this text, which is also computed from the settings, the calibration and the claims.

# %%
from lmvae_core.papers.benchmark.claims import PAPER_EPOCHS, ocm_schedule

paper_claims = [c for c in claims if c.kind == "paper"]
counts = pd.Series([c.verdict for c in paper_claims]).value_counts()
ocm_rows = per_run[per_run["method"].isin(["VAE-ELBO-OCM", "Dynamic-OCM"])]
ocm_share = max((ocm_schedule(r.steps, r.stream).fraction for r in ocm_rows.itertuples()), default=float("nan"))
joint_gap = cal[1].log_likelihood - cal[1].reference if len(cal) > 1 else float("nan")
text = (
    f"The {run.profile} profile trains on "
    + ("every training image of each task" if S.train_per_task is None else f"{S.train_per_task} images per task")
    + " for " + ", ".join(f"{exp.epochs_on(S, x)} epoch(s) per task on {x}" for x in S.streams)
    + f" (the paper profile: {PAPER_EPOCHS}), with a one-hidden-layer 784-{S.hidden}-{S.latent} network, "
    f"k = {S.iwae_k} importance samples and {S.n_generated} generated images for FID. "
    + (f"The benchmark's joint VAE on split MNIST lands {abs(joint_gap):.1f} nats "
       f"{'below' if joint_gap < 0 else 'above'} its calibrated reference (section 0's second row). "
       if np.isfinite(joint_gap) else "Its network has no calibrated reference. ")
    + "Absolute log-likelihoods are not the papers' or CN-DPM's (other networks, bounds and schedules), and FID from "
      "so few samples is biased upwards "
    "(section 0's real-data row shows by how much): only comparisons between methods within one stream and "
    "profile are meaningful, and the paired intervals show which differences the seeds can resolve. "
    f"OCM makes {S.ocm['epochs_per_batch']} pass(es) over its memory per arriving batch (paper: 100), "
    f"at most {100 * ocm_share:.2g}% of the official code's optimiser steps, with a smaller memory. Forgetting is not defined for the two offline references (they see all data at once). "
    f"Of the {len(paper_claims)} `paper` claims, "
    + ", ".join(f"{n} {v}" for v, n in counts.items()) + ". "
    f"Not run here: {', '.join(exp.STREAM_TITLES[x] for x in exp.STREAM_TITLES if x not in S.streams) or 'none'} "
    "(paper profile), permuted MNIST and colour data (paper profile in the spec), CN-DPM itself and its reservoir "
    "baseline (VAE-ELBO-OCM's memory plays that role).")
display(Markdown(text))

# %% [markdown]
# ## Deviations
# From the papers' own protocols (this notebook is not one paper's experiment). Where a measured effect exists, the
# file that holds it is named; the numbers are not copied here.
# - *One network budget.* Every method uses one MLP of the same size per VAE, expert or component, not each paper's
#   own architecture. Effect: not measured.
# - *FID features.* A small classifier trained on the stream's classes replaces Inception (its weights are not
#   available offline); whether it reaches its accuracy floor:
#   `lmvae_core/papers/benchmark/fidelity/feature_classifier.json` and `figures/05_benchmark/features.md`.
# - *Mixtures as densities.* L-MVAE, OCM and the offline mixture are scored as mixtures, not by the per-input
#   selection their papers use; what the choice changes is measured in notebooks 01 and 04
#   (`figures/01_lmvae/selection_likelihood_cost.md`, `figures/04_ocm/likelihoods.md`).
# - *Task-free stream for task-based methods.* Cut into 5 equal consecutive chunks, one epoch each. Effect: not
#   measured.
# - *Shorter schedules than the papers'.* Fewer epochs per task, fewer IWAE samples, fewer seeds, one pass over
#   STM u LTM per arriving batch for OCM, a smaller memory and Dynamic-OCM's expansion signal on a 1-sample bound
#   (the settings cell below lists them; the measurement behind the 1-sample bound is described beside the settings
#   in `lmvae_core/papers/benchmark/settings.py`). Each claim states its schedule and is measured again at half the
#   epochs per task: `figures/05_benchmark/per_run_half_budget.md`, `figures/05_benchmark/claims.md`.
# - *CN-DPM.* Its numbers are in bits/dim with its own bound, network and schedule; where ours differ, the claim has
#   no value and its note says what differs (`figures/05_benchmark/claims.md`). CN-DPM itself and its reservoir
#   baseline are not run (VAE-ELBO-OCM's memory plays that role).
# - *Not run.* Permuted MNIST and colour data.
