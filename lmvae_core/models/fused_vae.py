"""The MLP VAE's training loss with a hand-written backward pass, for the CPU.

Why: on a CPU the VAE step is a few small matrix products plus some fifty other operations, and autograd's
bookkeeping for those (a graph node per operation, saved tensors, the activations' and the likelihood's backward
kernels) cost about a quarter of the step. This module computes the same loss as `VAE.terms` (the same
operations in the forward pass, so the same values) and writes the gradients of every weight directly: one
autograd node for the whole network. Measured through `train` side by side in one process, alternating
(784-400-20, batch 128, 2 threads, MNIST, 3 processes of 5 rounds): 32.8-34.7k against 31.4-32.6k img/s in the
rounds after each process's first, about 1.06x; a sketch that skipped the loss value's own passes reached 1.25x,
so computing the reported loss takes most of the rest.

It applies only where it computes exactly what `VAE.loss` does (`applies`): an MLP VAE with ReLU hidden layers,
a Bernoulli likelihood, the beta objective (no capacity) and the model's own encode/decode/prior, on the CPU,
with gradients on (but not for the input), outside torch.func transforms, torch.compile and autocast. Everything else takes
the autograd path. The
gradients agree with autograd's to rounding (tests/test_fused_vae.py); they are not bitwise the same, because
the sums run in another order.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from .likelihoods import _BernoulliLogProb, gaussian_kl

LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0  # VAE.encode clamps logvar to this range; the gradient stops outside it


def _linears(seq: nn.Module) -> list[nn.Linear]:
    return [m for m in seq.modules() if isinstance(m, nn.Linear)]


_ENABLED = True


@contextlib.contextmanager
def disabled():
    """Inside the block every VAE takes the autograd path: a timing that compares the VAE with a model the fused
    loss does not serve (notebook 03's overhead) then compares the two models' computations, not the two paths."""
    global _ENABLED
    old, _ENABLED = _ENABLED, False
    try:
        yield
    finally:
        _ENABLED = old


# The VAE class whose methods the fused loss reproduces: models/vae.py registers it when it defines it (vae.py imports
# this module, so this module does not import vae.py back).
_REFERENCE: type | None = None


def register_reference(cls: type) -> type:
    global _REFERENCE
    _REFERENCE = cls
    return cls


def applies(model, x: torch.Tensor) -> bool:
    """Does the fused loss compute exactly what `model.loss(x)` would? (see the module docstring)"""
    if not _ENABLED or torch.compiler.is_compiling():
        # under torch.compile (training/compiled_step.py) inductor fuses the autograd path itself, and the checks
        # below would break its graph
        return False
    from ..nets import MLPDecoder, MLPEncoder

    c = model.config
    cls = type(model)
    own = _REFERENCE is not None and all(getattr(cls, name) is getattr(_REFERENCE, name) for name in
              ("terms", "objective", "encode", "decode", "log_px_given_z", "kl_per_dim", "reparameterize"))
    nets = type(model.encoder) is MLPEncoder and type(model.decoder) is MLPDecoder
    return (own and nets and c.arch == "mlp" and c.activation == "relu" and c.likelihood == "bernoulli"
            and c.capacity is None and not x.is_cuda and x.dtype == torch.float32 and not x.requires_grad
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu") and not torch._C._functorch.is_functorch_wrapped_tensor(x)
            and not torch._C._are_functorch_transforms_active())


def fused_loss(model, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(mean loss, {loss, recon, kl, elbo} batch means) as `VAE.loss`; the terms carry no gradient."""
    enc = _linears(model.encoder.body)
    head = model.encoder.head
    dec = _linears(model.decoder.net)
    params = [t for layer in (*enc, head, *dec) for t in (layer.weight, layer.bias)]
    latent = model.config.latent_dim
    loss, recon, kl = _FusedVAELoss.apply(x.reshape(x.shape[0], -1), latent, float(model.config.beta),
                                          len(enc), len(dec), *params)
    return loss, {"loss": loss.detach(), "recon": recon, "kl": kl, "elbo": -(recon + kl)}


def _relu_backward(grad: torch.Tensor, relu_output: torch.Tensor) -> torch.Tensor:
    """grad where the ReLU's output is positive, else 0: autograd's own ReLU backward kernel, one pass (multiplying by
    a boolean mask took two, 42 against 11 us for 128 x 400 on 2 threads)."""
    return torch.ops.aten.threshold_backward(grad, relu_output, 0)


def unpack_saved(saved: tuple, n_params: int, n_acts: int):
    """What `_FusedVAELoss` (and fused_stack's stacked terms) save, in their order: the input, logits, mu, raw logvar,
    eps and std; then the weights and biases; then every Linear layer's input after the first. Returns those six,
    the weights (every other parameter) and every Linear layer's input, the first one being the input."""
    head = saved[:6]
    weights = saved[6:6 + n_params:2]
    return head, weights, [saved[0], *saved[6 + n_params:6 + n_params + n_acts]]


class _FusedVAELoss(torch.autograd.Function):
    """forward(x [B, D], latent, beta, n_enc, n_dec, *weights and biases) -> (loss, recon mean, kl mean)."""

    @staticmethod
    def forward(ctx, x, latent, beta, n_enc, n_dec, *params):
        w = [params[i] for i in range(0, len(params), 2)]
        b = [params[i] for i in range(1, len(params), 2)]
        acts = [x]  # the input of every Linear layer, in order (after the first, ReLU outputs: their masks too)
        h = x
        for i in range(n_enc):
            h = torch.addmm(b[i], h, w[i].t()).clamp_min(0)
            acts.append(h)
        head = torch.addmm(b[n_enc], h, w[n_enc].t())
        mu, raw_logvar = head[:, :latent], head[:, latent:]
        logvar = raw_logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        eps = torch.randn_like(mu)  # the same draw as VAE.reparameterize: after the encoder, one per latent
        std = torch.exp(0.5 * logvar)
        z = mu + eps * std
        h = z
        acts.append(z)
        for j in range(n_dec):
            i = n_enc + 1 + j
            a = torch.addmm(b[i], h, w[i].t())
            if j < n_dec - 1:
                h = a.clamp_min(0)
                acts.append(h)
            else:
                logits = a
        recon = -_BernoulliLogProb.forward(logits, x).sum(-1)  # the likelihood's own CPU formula, without its node
        kl = gaussian_kl(mu, logvar).sum(-1)
        loss = (recon + beta * kl).mean()
        ctx.save_for_backward(x, logits, mu, raw_logvar, eps, std, *params, *acts[1:])
        ctx.dims = (latent, beta, n_enc, n_dec, len(params), len(acts) - 1)
        ctx.mark_non_differentiable(recon, kl)
        return loss, recon.detach().mean(), kl.detach().mean()

    @staticmethod
    def backward(ctx, grad_loss, _grad_recon, _grad_kl):
        latent, beta, n_enc, n_dec, n_params, n_acts = ctx.dims
        (x, logits, mu, raw_logvar, eps, std), w, acts = unpack_saved(ctx.saved_tensors, n_params, n_acts)
        needs = ctx.needs_input_grad[5:]
        grads: list[torch.Tensor | None] = [None] * n_params
        scale = grad_loss / x.shape[0]  # d mean / d (each image's loss)

        def linear_back(i: int, d: torch.Tensor) -> None:
            if needs[2 * i]:
                grads[2 * i] = d.t().mm(acts[i])
            if needs[2 * i + 1]:
                grads[2 * i + 1] = d.sum(0)

        # decoder, from the logits back to z: d(-log p)/d logits = sigmoid(l) - x
        d = torch.sigmoid(logits).sub_(x).mul_(scale)
        for j in reversed(range(n_dec)):
            i = n_enc + 1 + j
            linear_back(i, d)
            d = d.mm(w[i])
            if j > 0:  # layer i's input is a ReLU output
                d = _relu_backward(d, acts[i])
        # z = mu + eps * std(logvar), plus beta * KL
        d_mu = d + (scale * beta) * mu
        var = raw_logvar.clamp(LOGVAR_MIN, LOGVAR_MAX).exp()
        logvar_grad = d * eps * (0.5 * std) + (scale * beta * 0.5) * (var - 1.0)
        logvar_grad = logvar_grad.mul_((raw_logvar >= LOGVAR_MIN) & (raw_logvar <= LOGVAR_MAX))
        d = torch.cat([d_mu, logvar_grad], dim=1)
        # encoder head and hidden layers
        for i in reversed(range(n_enc + 1)):
            linear_back(i, d)
            if i > 0:
                d = _relu_backward(d.mm(w[i]), acts[i])
        return (None, None, None, None, None, *grads)
