"""Lifelong Generative Modeling (Ramapuram, Gregorova, Kalousis; arXiv 1705.09847): a student-teacher VAE.

The latent is z = [z_c, z_d]: z_c an isotropic Gaussian (prior N(0, I)), z_d a K-way categorical
(prior Uniform(K)) relaxed with Gumbel-softmax. In training z_d is the soft relaxed sample at temperature
tau = max(tau0 exp(-anneal_rate i), tau_min), i counting reparameterisations as the official code's
GumbelSoftmax.anneal does (two per step: x and its reconstruction; `anneal`); the learner sets it. At
evaluation z_d is a hard one-hot sample from Cat(pi(x)), so the evaluated model is the discrete-latent model.

After each task the teacher is a frozen copy of the student. A new student is built with a larger
discrete head (`grow` new categories for the new distribution); every parameter whose shape did not
change is copied, and of the grown tensors (encoder output layer, decoder input layer) the old slice is
copied, so the grown student computes exactly the teacher's outputs on the old parts. The new slice keeps
its fresh initialisation (the official code re-initialises the whole grown layer; `new_bias`, off by
default, instead starts the new logit a constant above the old ones, which every input then prefers, old
data included, against the consistency term). The student then trains on real rows and teacher replay
(z_c ~ N(0, I), z_d a uniform one-hot over the teacher's categories, decoded to Bernoulli means), the
replay carrying a share t/(t+1) of the loss, which is per row

    Bernoulli NLL + KL(q(z_c|x) || N(0, I)) + KL(Cat(pi(x)) || Uniform(K))
    + clamp(discrete_mut_info * CE(q(z_d|x_hat), z_d) + continuous_mut_info * KL(q(z_c|x_hat) || q(z_c|x)))
    + gamma_c * KL(q_student(z_d|x) || q_teacher(z_d|x))   on the replayed rows only.

The mutual-information terms are the official code's (`--discrete-mut-info`, `--continuous-mut-info`,
GumbelSoftmax.mutual_info_analytic and IsotropicGaussian.mutual_info_analytic): x_hat is the student's
reconstruction (Bernoulli means) of the row, encoded again. The discrete one is InfoGAN's bound: minus the
cross-entropy of the category drawn for x under q(z_d|x_hat) is I(z_d; x_hat) - H(z_d) from below. Unlike
InfoGAN's, the code is drawn from the posterior, not the prior, so the term can be met through z_c alone (a
reconstruction looks like its input and encodes back to the input's category whether or not the decoder reads
z_d): on full split MNIST the decoder's output changes by 0.009 per pixel between codes at one epoch per
task and 0.017 at three (0.020 and 0.022 without the term; lmvae_core/papers/lgm/fidelity/discrete_code*.json). The official code adds a constant (an entropy of
the one-hot sample, summed over the batch) that we leave out. The continuous term is KL(q(z_c|x_hat) || q(z_c|x)) with the Gaussian KL done right (the official
code passes the log-variance as the scale); its help text calls it "-I(z_c; x)", but penalising the KL makes
z_c recoverable from x_hat, which raises I(z_c; x_hat) rather than lowering it. Both are clamped to
[-mut_clamp, mut_clamp] as the official default (`--mut-clamp-strategy clamp`, value 100).
`prior_mut_info` (off by default; not in the official code) adds InfoGAN's own form, with codes drawn from
the prior: z_c ~ N(0, I) and a uniform category, decoded and encoded again, the category must come back.

The teacher has fewer categories than the student. For the consistency KL the teacher's posterior is
extended to the student's categories by giving the new ones a total mass `teacher_eps` (the old ones
keep (1 - eps) of theirs); the official code zero-pads log-probabilities instead, which is not a
distribution. With equal category counts the term is the plain categorical KL (zero iff equal).

The Gaussian KL is the closed form in (mu, logvar); the official code's defect (log-variance passed as
the scale of torch.distributions.Normal) is not reproduced.

The training procedure (teacher, student, budget of real data) is `lmvae_core.continual.lgm.LGMLearner`.
Its baselines are the same code with switches (`LifelongConfig.method`): 'lgm' (replay + regulariser),
'replay' (gamma_c = 0), 'naive' (no replay, sequential fine-tuning), 'ewc' (no replay, a diagonal
Fisher penalty gamma/2 * sum F (theta - theta_old)^2, the Fishers of all finished tasks summed), and 'full'
(every real image seen so far: the upper bound). As in the official code (StudentTeacher.fork), naive and
EWC keep the discrete head they started with; the student-teacher methods grow it.

IWAE evaluation (`log_weights`): z_c ~ q(z_c|x) and a hard z_d ~ Cat(pi(x)) are sampled; the weight
p(x|z_c,z_d) p(z_c) p(z_d) / (q(z_c|x) q(z_d|x)) gives a valid lower bound on log p(x) of the
hard-code model (q(z_d|x) > 0 for every category, so the proposal covers the prior's support).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.preprocess import binarize_dynamic
from ..nets import MLPDecoder, MLPEncoder
from .base import register_model
from .configured import Configured
from .likelihoods import log_likelihood, mean_image
# gaussian_kl takes the log-variance as a log-variance (std = exp(logvar / 2)), unlike the official code
from .vae import diag_gaussian_log_prob, gaussian_kl, standard_normal_log_prob


@dataclass
class LGMConfig:
    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 20  # continuous part z_c
    discrete_dim: int = 1  # categories of z_d now (grows by `grow` per new task)
    grow: int = 1
    hidden: tuple[int, ...] = (256,)
    activation: str = "relu"
    tau0: float = 1.0  # Gumbel-softmax temperature of a new student
    tau_min: float = 0.5  # ... decayed as tau0 exp(-anneal_rate i), floored here (official GumbelSoftmax)
    anneal_rate: float = 3e-5  # per reparameterisation (official); two per training step
    gamma_c: float = 1.0  # weight of the consistency regulariser
    discrete_mut_info: float = 1.0  # weight of CE(q(z_d|x_hat), z_d) (official --discrete-mut-info, off by default there)
    continuous_mut_info: float = 0.0  # weight of KL(q(z_c|x_hat) || q(z_c|x)) (official --continuous-mut-info)
    prior_mut_info: float = 0.0  # NOT in the official code: InfoGAN's term on codes drawn from the prior
    mut_clamp: float = 100.0  # the official 'clamp' strategy's bound on the mutual-information terms
    teacher_eps: float = 1e-3  # teacher mass given to the student's new categories in the consistency KL
    new_bias: float | None = None  # None: a new category's logit row keeps its fresh init (official); a number:
    # zero weights and this far above the largest old bias (the earlier behaviour, kept for the ablation)

    def __post_init__(self):
        self.input_shape, self.hidden = tuple(self.input_shape), tuple(self.hidden)
        if self.latent_dim <= 0 or self.discrete_dim <= 0 or self.grow < 0 or not self.hidden:
            raise ValueError("latent_dim and discrete_dim must be positive, grow >= 0, hidden non-empty")
        if not 0 < self.tau_min <= self.tau0:
            raise ValueError(f"need 0 < tau_min <= tau0, got tau0={self.tau0}, tau_min={self.tau_min}")
        if self.gamma_c < 0 or not 0 < self.teacher_eps < 1:
            raise ValueError("gamma_c must be >= 0 and teacher_eps in (0, 1)")
        if min(self.discrete_mut_info, self.continuous_mut_info, self.prior_mut_info, self.anneal_rate) < 0 \
                or self.mut_clamp <= 0:
            raise ValueError("the mutual-information weights and anneal_rate must be >= 0, mut_clamp > 0")


def categorical_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(Cat(softmax(logits)) || Uniform(K)) per row."""
    logp = F.log_softmax(logits, -1)
    return (logp.exp() * (logp + math.log(logits.shape[-1]))).sum(-1)


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """A relaxed one-hot sample (hard=False) or an exact one-hot sample of Cat(softmax(logits)) (hard=True).

    The hard sample is the argmax of logits + Gumbel noise (the Gumbel-max trick), i.e. an exact
    categorical draw; it carries no gradient, which is fine at evaluation."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator).clamp(1e-10, 1 - 1e-7)
    g = -torch.log(-torch.log(u))
    if hard:
        return F.one_hot((logits + g).argmax(-1), logits.shape[-1]).to(logits.dtype)
    return F.softmax((logits + g) / tau, -1)


def consistency_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """KL(q_student(z_d|x) || q_teacher(z_d|x)) per row; the teacher gives its missing categories mass eps."""
    ls = F.log_softmax(student_logits, -1)
    lt = F.log_softmax(teacher_logits, -1)
    extra = ls.shape[-1] - lt.shape[-1]
    if extra < 0:
        raise ValueError("the student has fewer categories than the teacher")
    if extra > 0:
        lt = torch.cat([lt + math.log1p(-eps), lt.new_full((*lt.shape[:-1], extra), math.log(eps / extra))], -1)
    return (ls.exp() * (ls - lt)).sum(-1)


@register_model
class LGM(Configured):
    """The VAE with a Gaussian + Gumbel-softmax latent that the student and the teacher both are."""
    config_class = LGMConfig

    def build(self, c: LGMConfig) -> None:
        # One encoder output layer: [mu (D), logvar (D), logits (K)]; decoder input [z_c (D), z_d (K)].
        # The discrete parts come last, so growing K only appends rows / columns.
        self.encoder = MLPEncoder(c.input_shape, c.hidden, 1, c.activation)
        self.encoder.head = nn.Linear(c.hidden[-1], 2 * c.latent_dim + c.discrete_dim)
        self.decoder = MLPDecoder(c.input_shape, c.hidden, c.latent_dim + c.discrete_dim, c.activation)
        self.register_buffer("tau", torch.tensor(float(c.tau0)))

    @property
    def n_categories(self) -> int:
        return self.config.discrete_dim

    # -- the pieces ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.encoder.head(self.encoder.body(x))
        d = self.config.latent_dim
        return h[..., :d], h[..., d:2 * d].clamp(-12.0, 8.0), h[..., 2 * d:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def sample_discrete(self, logits: torch.Tensor, hard: bool | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """Soft Gumbel-softmax sample in training mode, hard one-hot at evaluation (unless `hard` is given)."""
        return gumbel_softmax(logits, float(self.tau), (not self.training) if hard is None else hard, generator)

    def terms(self, x: torch.Tensor, hard: bool | None = None) -> dict[str, torch.Tensor]:
        """Per-image terms: recon = -log p(x|z), kl_c, kl_d, kl, elbo, the mutual-information penalty `mi`
        (its parts mi_d, mi_c), loss = -elbo + mi, and the discrete logits."""
        c = self.config
        mu, logvar, logits = self.encode(x)
        zc = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        zd = self.sample_discrete(logits, hard)
        out = self.decode(torch.cat([zc, zd], -1))
        recon = -log_likelihood("bernoulli", x, out)
        kl_c = gaussian_kl(mu, logvar).sum(-1)
        kl_d = categorical_kl_uniform(logits)
        kl = kl_c + kl_d
        mi_d = mi_c = mi_p = torch.zeros_like(recon)
        if c.discrete_mut_info > 0 or c.continuous_mut_info > 0:
            # the reconstruction encoded again: its category must be the one drawn, its z_c near q(z_c|x)
            mu_h, logvar_h, logits_h = self.encode(mean_image("bernoulli", out))
            if c.discrete_mut_info > 0:
                mi_d = F.cross_entropy(logits_h, zd.argmax(-1), reduction="none")
            if c.continuous_mut_info > 0:
                mi_c = gaussian_kl_between(mu_h, logvar_h, mu, logvar).sum(-1)
        if c.prior_mut_info > 0:
            # one prior code per row, decoded and encoded again: its category must come back, so the decoder
            # has to draw each category differently (z_c cannot carry a category it was not given)
            cats = torch.randint(0, self.n_categories, (x.shape[0],), device=x.device)
            x_p = mean_image("bernoulli", self.decode(self.prior_codes(x.shape[0], cats)))
            mi_p = F.cross_entropy(self.encode(x_p)[2], cats, reduction="none")
        mi = (c.discrete_mut_info * mi_d + c.continuous_mut_info * mi_c + c.prior_mut_info * mi_p
              ).clamp(-c.mut_clamp, c.mut_clamp)
        return {"loss": recon + kl + mi, "recon": recon, "kl_c": kl_c, "kl_d": kl_d, "kl": kl, "elbo": -(recon + kl),
                "mi": mi, "mi_d": mi_d, "mi_c": mi_c, "mi_p": mi_p, "logits": logits}

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = self.terms(x)
        return t["loss"].mean(), {k: v.mean() for k, v in t.items() if k != "logits"}

    def forward(self, x: torch.Tensor, op: str = "terms", **kwargs):
        return getattr(self, op)(x, **kwargs)

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log p(x, z_c, z_d) - log q(z_c, z_d|x) for k samples, z_d a hard draw from Cat(pi(x)): [k, B]."""
        mu, logvar, logits = self.encode(x)
        zc = mu + torch.randn(k, *mu.shape, device=mu.device) * torch.exp(0.5 * logvar)
        logq_d = F.log_softmax(logits, -1)
        idx = torch.distributions.Categorical(logits=logits).sample((k,))  # [k, B]
        zd = F.one_hot(idx, logits.shape[-1]).to(zc.dtype)
        log_px = log_likelihood("bernoulli", x, self.decode(torch.cat([zc, zd], -1)))
        log_prior = standard_normal_log_prob(zc) - math.log(logits.shape[-1])
        log_q = diag_gaussian_log_prob(zc, mu, logvar) + logq_d.gather(-1, idx.T).T
        return log_px + log_prior - log_q

    def prior_codes(self, n: int, categories: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """z = [z_c ~ N(0, I), one-hot z_d]: uniform categories unless given."""
        dev = self.tau.device
        zc = torch.randn(n, self.config.latent_dim, device=dev, generator=generator)
        if categories is None:
            categories = torch.randint(0, self.n_categories, (n,), device=dev, generator=generator)
        zd = F.one_hot(categories.to(dev), self.n_categories).float()
        return torch.cat([zc, zd], -1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               categories: torch.Tensor | None = None) -> torch.Tensor:
        """Bernoulli means decoded from the prior (the replay the teacher hands to the student)."""
        return mean_image("bernoulli", self.decode(self.prior_codes(n, categories, generator)))

    @torch.no_grad()
    def code_effect(self, n: int = 200, generator: torch.Generator | None = None) -> float:
        """How much z_d changes the decoder's output: the mean absolute difference per pixel between the
        Bernoulli means of the same z_c ~ N(0, I) decoded with two different categories, over all pairs."""
        k = self.n_categories
        if k < 2:
            return 0.0
        zc = torch.randn(n, self.config.latent_dim, device=self.tau.device, generator=generator)
        eye = torch.eye(k, device=zc.device)
        z = torch.cat([zc.repeat(k, 1), eye.repeat_interleave(n, 0)], -1)
        means = mean_image("bernoulli", self.decode(z)).view(k, n, -1)
        diff = (means.unsqueeze(0) - means.unsqueeze(1)).abs().mean((2, 3))  # [k, k]
        return float(diff.sum() / (k * (k - 1)))

    @torch.no_grad()
    def assign(self, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
        """argmax_k q(z_d = k | x)."""
        return torch.cat([self.encode(x[s:s + batch_size])[2].argmax(-1) for s in range(0, x.shape[0], batch_size)])

    # -- growth ---------------------------------------------------------------------------------
    @torch.no_grad()
    def grown(self, extra: int | None = None) -> "LGM":
        """A new model with `extra` more categories; same-shape parameters copied, grown ones copied on their
        old slice (so the old outputs are unchanged), the new slice freshly initialised."""
        extra = self.config.grow if extra is None else extra
        cfg = copy.deepcopy(self.config)
        cfg.discrete_dim += extra
        new = type(self)(cfg).to(self.tau.device)
        old_state = self.state_dict()
        for name, p in new.state_dict().items():
            src = old_state[name]
            if src.shape == p.shape:
                p.copy_(src)
            else:
                p[tuple(slice(0, s) for s in src.shape)].copy_(src)
        if cfg.new_bias is not None:  # the earlier start (see the module docstring): new logit high everywhere
            old_k = 2 * cfg.latent_dim + self.config.discrete_dim
            new.encoder.head.weight[old_k:] = 0.0
            new.encoder.head.bias[old_k:] = new.encoder.head.bias[2 * cfg.latent_dim:old_k].max() + cfg.new_bias
        new.tau.fill_(self.config.tau0)
        return new


# ---- the student-teacher procedure ----------------------------------------------------------------------


def gaussian_kl_between(mu_a: torch.Tensor, logvar_a: torch.Tensor, mu_b: torch.Tensor,
                        logvar_b: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_a, exp(logvar_a)) || N(mu_b, exp(logvar_b))) per dimension (closed form)."""
    return 0.5 * (logvar_b - logvar_a + (logvar_a.exp() + (mu_a - mu_b).pow(2)) / logvar_b.exp() - 1.0)


def fork(student: LGM, grow: bool = True) -> tuple[LGM, LGM]:
    """End of a task: the teacher is a frozen copy of the student; the new student has a grown discrete head."""
    teacher = copy.deepcopy(student).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    new = student.grown() if grow else copy.deepcopy(student)
    for p in new.parameters():
        p.requires_grad_(True)
    return teacher, new


def student_teacher_loss(student: LGM, teacher: LGM | None, real: torch.Tensor, replay: torch.Tensor | None,
                         gamma_c: float, replay_weight: float | None = None) -> tuple[torch.Tensor, dict]:
    """ELBO loss plus gamma_c * consistency KL on the replayed rows (zero on real rows), in one pass over both.

    replay_weight=None: the mean over all rows (the official code's merged batch, replay share = its row
    share); a weight w: (1 - w) * mean over the real rows + w * mean over the replayed rows, so a full real
    batch and a replay batch of any size can carry the official share w = t/(t+1)."""
    has_replay = replay is not None and replay.shape[0] > 0
    x = torch.cat([real, replay]) if has_replay else real
    t = student.terms(x)
    loss_rows = t["loss"]
    terms = {k: t[k].mean().detach() for k in ("loss", "recon", "kl_c", "kl_d", "mi")}
    n_real = real.shape[0]
    if teacher is not None and has_replay and gamma_c > 0:
        with torch.no_grad():
            t_logits = teacher.encode(replay)[2]
        cons = consistency_kl(t["logits"][n_real:], t_logits, student.config.teacher_eps)
        loss_rows = loss_rows + gamma_c * F.pad(cons, (n_real, 0))
        terms["consistency"] = cons.mean().detach()
    if has_replay and replay_weight is not None:
        loss = (1 - replay_weight) * loss_rows[:n_real].mean() + replay_weight * loss_rows[n_real:].mean()
    else:
        loss = loss_rows.mean()
    terms["total"] = loss.detach()
    return loss, terms


def diagonal_fisher(model: LGM, x: torch.Tensor, n: int = 256, chunk: int = 64,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher: the mean over n images of the squared per-image gradient of the loss."""
    from torch.func import functional_call, grad, vmap

    idx = torch.randperm(x.shape[0], generator=generator)[:n].to(x.device)
    data = binarize_dynamic(x[idx], None)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    was_training = model.training
    model.train()

    def one(p, xi):
        return functional_call(model, (p, buffers), (xi.unsqueeze(0),), {"op": "terms"})["loss"].sum()

    per_sample = vmap(grad(one), in_dims=(None, 0), randomness="different")
    fisher = {k: torch.zeros_like(v) for k, v in params.items()}
    for s in range(0, data.shape[0], chunk):
        g = per_sample(params, data[s:s + chunk])
        for k in fisher:
            fisher[k] += g[k].pow(2).sum(0)
    model.train(was_training)
    return {k: v / data.shape[0] for k, v in fisher.items()}


def ewc_penalty(student: LGM, anchor: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor],
                gamma: float) -> torch.Tensor:
    """gamma/2 * sum F (theta - theta_old)^2 over the slices the student shares with the anchor."""
    total = 0.0
    for name, p in student.named_parameters():
        a, f = anchor[name], fisher[name]
        sl = tuple(slice(0, s) for s in a.shape)
        total = total + (f * (p[sl] - a).pow(2)).sum()
    return 0.5 * gamma * total


def add_fisher(total: dict | None, new: dict) -> dict:
    """Sum of the Fishers of the finished tasks, each embedded in the current (grown) shapes."""
    if total is None:
        return new
    out = {}
    for k, v in new.items():
        acc = v.clone()
        old = total[k]
        acc[tuple(slice(0, s) for s in old.shape)] += old
        out[k] = acc
    return out


REPARAMETERISATIONS_PER_STEP = 2  # official: the student's GumbelSoftmax runs on x and on its reconstruction


def anneal(cfg: LGMConfig, step: int) -> float:
    """The official temperature after `step` training steps: max(tau0 exp(-anneal_rate i), tau_min), i the
    reparameterisations so far. It does not depend on how long a task is (it reaches tau_min = 0.5 after
    11.6k steps at the default rate)."""
    return max(cfg.tau0 * math.exp(-cfg.anneal_rate * REPARAMETERISATIONS_PER_STEP * step), cfg.tau_min)


__all__ = ["LGM", "LGMConfig", "gaussian_kl", "gaussian_kl_between", "categorical_kl_uniform", "gumbel_softmax",
           "consistency_kl", "fork", "student_teacher_loss", "diagonal_fisher", "ewc_penalty", "add_fisher", "anneal"]
