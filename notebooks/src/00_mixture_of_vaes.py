# %% [markdown]
# # 00 — Mixture of VAEs: a manager routes images to VAE experts, without labels
#
# Source: the blog post *Mixture of Variational Autoencoders – a Fusion Between MoE and VAE*.
# A Mixture of Experts with x -> x: K = 10 VAE experts and a **manager** that maps an image to a
# softmax p(x) over the experts. The loss per image is sum_k p_k(x) L_k(x), with L_k the negative ELBO
# of expert k. The manager moves probability towards the experts that model an image best, and each
# expert learns mostly from the images routed to it, so the experts specialise. The manager can
# collapse onto one expert; a **balancing term** KL(mean_batch p || uniform) prevents that.
# As a by-product, argmax p(x) is an unsupervised classifier. Labels are used for evaluation only.
#
# The post's claims are judged as the post makes them (specialisation, the classifier by-product, collapse
# without balancing) against two baselines this notebook measures: k-means on pixels and k-means on the latent
# means of a plain VAE of the experts' architecture. GMVAE and VaDE are reference points only. Section 5 shows
# why the accuracy stops near those baselines; section 6 goes **beyond the post** with one mixture variant.
#
# The model is `lmvae_core.models.MoEVAE`. The K experts run in one batched computation (`ExpertMixture`:
# `torch.func.vmap`, and on a CPU one stacked step with a hand-written backward, `models/fused_stack.py`), not a
# Python loop. This notebook only calls the core and plots.

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

# %%
import math
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from lmvae_core.experiments.common import setup
from lmvae_core.experiments import mixture_of_vaes as exp
from lmvae_core.results import plots

run = setup("00_mixture_of_vaes", profile, seed, device, data_root, out_dir, force, progress, exp.SETTINGS, offline=offline)
S = run.settings
print(run)
print(S)

# %% [markdown]
# ## 1. Training without labels (MNIST, then Fashion-MNIST)
# Each dataset trains one mixture (cached on disk by its full configuration: a re-run reloads), and one plain
# VAE of the experts' architecture and schedule, whose latent means k-means clusters (the stronger baseline).
# Data are dynamically binarised every epoch; likelihood Bernoulli. The post differs in three details: a
# Gaussian likelihood (std 0.5) on grey images, sigmoid units, and the variance of the summed gate as its
# balancing term (weight 0.1). The `paper` profile takes the post's widths (128 units, latent 10) and
# schedule (100 epochs of batch 100).

# %%
results = {name: exp.run_dataset(run, name) for name in S["datasets"]}
summary = pd.DataFrame([{
    "dataset": name,
    "clustering accuracy": r["metrics"]["accuracy"],
    "k-means on pixels": r["metrics"]["kmeans_accuracy"],
    "k-means on plain VAE latent means": r["metrics"]["latent_kmeans_accuracy"],
    "purity": r["metrics"]["purity"],
    "usage entropy / log K": r["metrics"]["usage_entropy"] / math.log(S["n_experts"]),
    "-ELBO routed expert (nats)": r["metrics"]["neg_elbo_routed"],
    "train time (s)": r["train_seconds"],
} for name, r in results.items()])
run.out.table(summary, "summary")
summary.round(3)

# %%
fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3))
for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
    plots.curves({"mixture -ELBO": [h["mixture_nelbo"] for h in r["history"]]}, ax=ax, title=name,
                 xlabel="epoch", ylabel="nats / image")
run.out.figure(fig, "training_curves");

# %% [markdown]
# ### Calibration: a jointly trained VAE of the experts' architecture
# One VAE of the experts' width and latent size trained on all of MNIST, next to a measured reference
# (784-200-20, 10 epochs, full MNIST; `calibration.py`). A miss means the networks or the schedule are too
# weak for the likelihood and latent baselines to mean much; the claims that rest on them become
# `not comparable`. The smoke profile always misses: it trains on 3,000 images for one epoch.

# %%
from lmvae_core.experiments.calibration import calibrate, calibration_frame

cal = calibrate(run, exp.joint_spec(S), exp.CALIBRATION_REFERENCE)
run.out.table(calibration_frame([cal]), "calibration")
calibration_frame([cal])

# %% [markdown]
# ### Log-likelihood: which reading of the mixture?
# Picking one expert per image is not a density: the best of K experts can exceed the uniform mixture
# log (1/K) sum_k p_k(x) by up to log K, and picking the best with the same IWAE draw that scores it adds
# selection noise on top. The table gives the valid mixture likelihood beside the manager's routed expert, the
# best expert scored with the draw that picked it, and the best expert re-scored with an independent draw.

# %%
ll = pd.DataFrame([{
    "dataset": name,
    "uniform mixture (valid density)": r["metrics"]["iwae_mixture"],
    "routed expert (manager)": r["metrics"]["iwae"],
    "best expert, same draw": r["metrics"]["iwae_best_same_draw"],
    "best expert, re-drawn": r["metrics"]["iwae_best_redrawn"],
    "log K": math.log(S["n_experts"]),
} for name, r in results.items()])
run.out.table(ll, "log_likelihood")
ll.round(2)

# %% [markdown]
# ## 2. Samples from every expert (one row per expert)
# Each row is one expert's decoder applied to prior samples. Specialised experts draw mostly one class.

# %%
for name, r in results.items():
    samples = r["model"].sample_per_expert(10, seed=run.seed)
    k = samples.shape[0]
    fig = plots.show_images(samples.flatten(0, 1), nrow=10, title=f"{name}: samples per expert",
                            row_labels=[f"expert {i}" for i in range(k)])
    run.out.figure(fig, f"samples_per_expert_{name}")
    plt.show()

# %% [markdown]
# ## 3. The manager as a classifier
# Rows: true label; columns: the expert the manager routes to (argmax p). Accuracy uses the
# best one-to-one matching of experts to labels (Hungarian algorithm).

# %%
fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5))
for ax, (name, r) in zip(np.atleast_1d(axes), results.items()):
    conf = r["metrics"]["confusion"]
    plots.heatmap(conf, [str(i) for i in range(conf.shape[0])], [f"e{j}" for j in range(conf.shape[1])], ax=ax,
                  fmt="{:.0f}", title=f"{name}: accuracy {r['metrics']['accuracy']:.3f}",
                  xlabel="expert (argmax p)", ylabel="true label")
run.out.figure(fig, "manager_confusion");

# %% [markdown]
# ## 4. Ablation: the balancing term
# The same mixture without and with KL(mean_batch p || uniform), over several seeds, on a shorter schedule.

# %%
ablation = exp.balancing_ablation(run, "mnist")
abl = pd.DataFrame([{k: v for k, v in r.items() if k != "usage"} for r in ablation])
abl["usage entropy / log K"] = abl["usage_entropy"] / math.log(S["n_experts"])
run.out.table(abl, "balancing_ablation")
display(abl.round(3))
usage = pd.DataFrame([{"balancing": r["balance"], "seed": r["seed"], "expert": k, "share": u}
                      for r in ablation for k, u in enumerate(r["usage"])])
fig = plots.bars_over_seeds(usage, "expert", "share", panel="balancing", hline=1 / S["n_experts"],
                            ylabel="share of test images")
run.out.figure(fig, "expert_usage_ablation");

# %% [markdown]
# ## 5. Why the accuracy stops near k-means: the objective's ceiling
# The loss sum_k p_k(x) L_k(x) is minimised, for fixed experts, by putting all of p on the expert with the
# lowest loss. If the manager does that, and its gate is nearly one-hot, training is hard EM over the experts'
# pixel-space likelihoods: each image goes to the expert that reconstructs it best, each expert refits to its
# images. That is k-means with VAEs as centroids, and it merges the digits whose pixels overlap (4/7/9, 3/5/8)
# as pixel k-means does. The table measures both conditions on this run: how often the manager's argmax p is
# the experts' own lowest-loss choice (negative ELBO averaged over 4 draws), the accuracy of each assignment,
# and the mean of the gate's largest probability, beside the two k-means baselines.
#
# `benchmarks/fidelity/00_mixture_ceiling.py` follows the same numbers epoch by epoch on full MNIST (quick
# networks, 5 epochs; its JSON is committed): the manager agrees with the lowest-loss expert on 85-87 % of the
# test images from the first epoch on, the lowest-loss assignment scores only 1-2 points above the manager
# (0.511 against 0.497 after one epoch, 0.557 against 0.535 after five; the manager's accuracy moves by under
# 2 points per epoch and fell in the fifth), and the mean largest gate probability rises from 0.89 to 0.95.
# The experts that do not hold one digit mix the look-alikes: 4 with 9 (0.41 and 0.38 of one expert's
# images), 7 with 9, 8 with 5 (0.55 and 0.39), 2 with 3. The experts' own choice, the thing the manager learns to
# copy, stays below k-means on pixels (0.578 on the same test set) and on a plain VAE's latent means (0.591,
# `00_beyond_the_post.json`): a better manager or a longer run moves the accuracy towards that level, not
# past it.

# %%
ceiling = pd.DataFrame([{
    "dataset": name,
    "routing = lowest-loss expert": r["metrics"]["routing_agreement"],
    "accuracy, manager routing": r["metrics"]["accuracy"],
    "accuracy, lowest-loss expert": r["metrics"]["lowest_loss_accuracy"],
    "mean max gate probability": r["metrics"]["mean_max_gate"],
    "k-means on pixels": r["metrics"]["kmeans_accuracy"],
    "k-means on VAE latent means": r["metrics"]["latent_kmeans_accuracy"],
} for name, r in results.items()])
run.out.table(ceiling, "ceiling")
ceiling.round(3)

# %% [markdown]
# ## 6. Beyond the post: a mixture prior in one latent space (VaDE style)
# **Not in the post.** The mixture moves from pixel space into the latent space of one VAE:
# p(z) = sum_c pi_c N(z; m_c, diag s_c^2) with a shared decoder (`lmvae_core.models.MoGVAE`). As in VaDE
# (Jiang et al. 2017), the plain VAE of section 1 is the pretraining, a diagonal GMM fitted to its latent
# means of the training images initialises the prior, and the ELBO with the mixture prior trains everything
# together; an image's cluster is argmax_c p(c | z = mu(x)). Mixtures of autoencoders for clustering (MIXAE
# 2017, DAMIC 2019) are the nearest published anchors. With more components than classes the score is
# many-to-one (each component takes its majority label; labels used for scoring only); with 10 components it
# is the one-to-one (Hungarian) accuracy of the rest of the notebook. k-means with as many clusters on the same
# latent means is the baseline of each row.
#
# On full MNIST (`benchmarks/fidelity/00_beyond_the_post.json`: 784-256-10 VAE, 10 epochs, then 3 epochs with
# the mixture prior, seed 0): with 50 components the variant reaches 0.860 many-to-one, over the bar of 0.85;
# with 10 components it reaches 0.645 one-to-one (GMM initialisation 0.611, k-means on the latent means 0.591,
# on pixels 0.578). Read the 0.85 with its baselines: k-means with 50 clusters scores 0.866 many-to-one on the
# same latent means and 0.836 on pixels, so most of the step comes from the learned latent space and from
# scoring many clusters many-to-one, not from training with the mixture prior (+0.010 over its GMM
# initialisation at 50 components, +0.034 at 10). 100 components give 0.890 (k-means on latent means 0.886).
# VaDE's reported ~94 % needs a deeper, longer-pretrained autoencoder than the experts' one hidden layer.

# %%
beyond = exp.beyond_the_post(run, results["mnist"]["plain"])
beyond_table = exp.beyond_frame(beyond)
run.out.table(beyond_table, "beyond_the_post")
beyond_table.round(3)

# %% [markdown]
# ## 7. Claims
# Verdicts are computed from the measured values by the rule in the `criterion` column. Each claim records its
# schedule (images seen against the post's 100 epochs of 55,000 images); below the share it needs, or when the
# calibration above was missed, or when the interval over seeds spans the criterion, the verdict is
# `not comparable` and the `why` column says which. The last claim is beyond the post.

# %%
claims = exp.claims(run, results, ablation, beyond, cal.met)
table = run.out.claims(claims, run.notebook)
display(Markdown(table.to_markdown(index=False)))

# %% [markdown]
# ## What was and was not reproduced
# The post gives no numbers, so its claims are judged against two baselines this notebook measures itself:
# k-means on raw pixels and k-means on a plain VAE's latent means. GMVAE (82-88 %) and VaDE (about 94 %) are
# reference points only. The mixture's accuracy is the objective's ceiling, not a bug or a short schedule
# (section 5): the manager copies the experts' lowest-loss choice with a nearly one-hot gate, so
# sum_k p_k L_k trains as hard EM over pixel likelihoods, and that choice classifies digits about as well as
# pixel k-means. The variant beyond the post (section 6) clears 0.85 with 50 components scored many-to-one,
# by clustering in a learned latent space; k-means on the same latent space does as well.
# Read the verdicts above rather than this text: they are recomputed on every run.
