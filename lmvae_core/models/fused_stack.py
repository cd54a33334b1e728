"""K MLP VAEs' per-image ELBO terms from stacked weights, with a hand-written backward pass, for the CPU.

Why: a batched mixture (models/mixture.py) and a stacked ensemble (training/ensemble.py) run K copies of one VAE
as one computation under torch.func.vmap. On a CPU, vmap's batching rules and autograd's graph cost a large part
of the step: 10 stacked 784-400-20 experts took about 22.6 ms a step where their products and Adam took 13.2 ms
(benchmarks/cpu_bounds.py, commit 3058520). This is `fused_vae.py` for a stack: the same forward as `VAE.terms`
with batched products (baddbmm), and a backward written out, so the whole stack is one autograd node. Measured
side by side in one process (10 experts, batch 128, Adam, 2 threads, medians of 5 alternating rounds of 30 steps):
18.4 against 21.5 ms a step through vmap, 1.17x; the products then run at about 370 GFLOP/s, near this machine's
square-matrix rate, and Adam takes 2.8 ms, so about 4 ms of the step is everything else.

It returns the per-image reconstruction and KL terms [K, B], both with gradients: whatever a caller builds from
them (a Dirichlet-weighted sum, a gate's weights that themselves need gradients, per-member KL weights) backs
through them correctly, because the backward takes any per-image coefficient of each term.

It reads the Linear weights in their stored layout, [K, in, out] (models/stacking.py), so h @ W needs no
transpose and the weight gradients arrive in that layout. It serves exactly the VAEs `fused_vae.applies` serves
(an MLP VAE with ReLU, Bernoulli likelihood, beta objective, the model's own methods, on the CPU, with
gradients on); everything else keeps the vmap path. The inputs are one batch for every member [B, D] or one
per member [K, B, D]. Values agree with the vmap path to rounding and gradients to float tolerance
(tests/test_fused_stack.py), not bitwise: the sums run in another order.
"""
from __future__ import annotations

import torch
from torch import nn

from . import fused_vae
from .fused_vae import LOGVAR_MAX, LOGVAR_MIN, _relu_backward
from .likelihoods import _BernoulliLogProb, gaussian_kl


def layer_names(model: nn.Module) -> list[str]:
    """The model's Linear layers in forward order (encoder body, encoder head, decoder), by module name."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def applies(model: nn.Module, x: torch.Tensor) -> bool:
    """Does `stacked_terms` compute what vmapping `model.terms` over a stack would? x: [B, ...] or [K, B, ...]."""
    return fused_vae.applies(model, x)


def stacked_terms(model: nn.Module, kept: dict[str, torch.Tensor], x: torch.Tensor,
                  eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(recon, kl, eps) per member and image, [K, B] each (eps [K, B, latent]), for the stack `kept`.

    kept maps the model's parameter names to stacks in the stored layout (Linear weights [K, in, out], biases
    [K, out]). x is [B, ...] (one batch for all members) or [K, B, ...] (one per member); eps, if given,
    [K, B, latent] (else drawn here, one standard normal per member, image and latent, as vmap draws them)."""
    names = layer_names(model)
    n_enc = len([n for n in names if n.startswith("encoder.")]) - 1  # hidden layers before the head
    n_dec = len(names) - n_enc - 1
    params = [t for n in names for t in (kept[f"{n}.weight"], kept[f"{n}.bias"])]
    k = params[0].shape[0]
    latent = model.config.latent_dim
    flat = x.reshape(*x.shape[:1 if x.dim() == len(model.config.input_shape) + 1 else 2], -1)
    if eps is None:
        eps = torch.randn(k, flat.shape[-2], latent, dtype=flat.dtype, device=flat.device)
    recon, kl = _StackedVAETerms.apply(flat, eps, n_enc, n_dec, *params)
    return recon, kl, eps


def terms(model: nn.Module, kept: dict[str, torch.Tensor], x: torch.Tensor,
          eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """`model.terms` for every member of the stack, [K, B] each: loss (the model's objective), recon, kl, elbo."""
    recon, kl, _ = stacked_terms(model, kept, x, eps)
    return {"loss": model.objective(recon, kl), "recon": recon, "kl": kl, "elbo": -(recon + kl)}


class _StackedVAETerms(torch.autograd.Function):
    """forward(x [B, D] or [K, B, D], eps [K, B, L], n_enc, n_dec, *stored weights and biases) -> (recon, kl)."""

    @staticmethod
    def forward(ctx, x, eps, n_enc, n_dec, *params):
        w = [params[i] for i in range(0, len(params), 2)]  # [K, in, out]
        b = [params[i].unsqueeze(1) for i in range(1, len(params), 2)]  # [K, 1, out]
        k = w[0].shape[0]
        xs = x if x.dim() == 3 else x.expand(k, *x.shape)
        acts = [xs]  # every Linear layer's input; after the first, ReLU outputs (their masks too)
        h = xs
        for i in range(n_enc):
            h = torch.baddbmm(b[i], h, w[i]).clamp_min_(0)
            acts.append(h)
        head = torch.baddbmm(b[n_enc], h, w[n_enc])
        latent = eps.shape[-1]
        mu, raw_logvar = head[..., :latent], head[..., latent:]
        logvar = raw_logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        std = torch.exp(0.5 * logvar)
        h = mu + eps * std
        acts.append(h)
        for j in range(n_dec):
            i = n_enc + 1 + j
            a = torch.baddbmm(b[i], h, w[i])
            if j < n_dec - 1:
                h = a.clamp_min_(0)
                acts.append(h)
            else:
                logits = a
        recon = -_BernoulliLogProb.forward(logits, x).sum(-1)
        kl = gaussian_kl(mu, logvar).sum(-1)
        ctx.save_for_backward(xs, logits, mu, raw_logvar, eps, std, *params, *acts[1:])
        ctx.dims = (n_enc, n_dec, len(params), len(acts) - 1)
        return recon, kl

    @staticmethod
    def backward(ctx, g_recon, g_kl):
        n_enc, n_dec, n_params, n_acts = ctx.dims
        (xs, logits, mu, raw_logvar, eps, std), w, acts = fused_vae.unpack_saved(ctx.saved_tensors, n_params, n_acts)
        needs = ctx.needs_input_grad[4:]
        grads: list[torch.Tensor | None] = [None] * n_params

        def linear_back(i: int, d: torch.Tensor) -> None:
            if needs[2 * i]:
                grads[2 * i] = torch.bmm(acts[i].transpose(1, 2), d)  # [K, in, out]: the stored layout
            if needs[2 * i + 1]:
                grads[2 * i + 1] = d.sum(1)

        # decoder: d(recon)/d logits = sigmoid(l) - x, times each image's coefficient of recon
        d = torch.sigmoid(logits).sub_(xs).mul_(g_recon.unsqueeze(-1))
        for j in reversed(range(n_dec)):
            i = n_enc + 1 + j
            linear_back(i, d)
            d = torch.bmm(d, w[i].transpose(1, 2))
            if j > 0:
                d = _relu_backward(d, acts[i])
        # z = mu + eps * std(logvar); kl = 0.5 * (mu^2 + var - 1 - logvar) per latent
        c_kl = g_kl.unsqueeze(-1)
        d_mu = d + c_kl * mu
        var = raw_logvar.clamp(LOGVAR_MIN, LOGVAR_MAX).exp()
        logvar_grad = d * eps * (0.5 * std) + (0.5 * c_kl) * (var - 1.0)
        logvar_grad = logvar_grad.mul_((raw_logvar >= LOGVAR_MIN) & (raw_logvar <= LOGVAR_MAX))
        d = torch.cat([d_mu, logvar_grad], dim=-1)
        for i in reversed(range(n_enc + 1)):
            linear_back(i, d)
            if i > 0:
                d = _relu_backward(torch.bmm(d, w[i].transpose(1, 2)), acts[i])
        return (None, None, None, None, *grads)


__all__ = ["applies", "layer_names", "stacked_terms", "terms"]
