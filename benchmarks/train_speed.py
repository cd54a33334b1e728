"""Training speed, measured side by side in one run (ratios, not absolute times, are the point).

1. The project's VAE step over device tensors against a reference loop in the style of the PyTorch
   examples VAE (torchvision MNIST + ToTensor + DataLoader, 784-400-20, batch 128, Adam 1e-3).
2. A mixture of K=10 experts: one batched (vmapped) computation against a Python loop over experts.
Measurements alternate between the contenders over several rounds and report medians, so that
background load affects both alike.

Usage: python benchmarks/train_speed.py [--device auto] [--images 12800] [--rounds 3] [--data-root DIR]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lmvae_core import paths
from lmvae_core.data import DataConfig, load_split
from lmvae_core.data.datasets import DataMissingError, load_images
from lmvae_core.data.idx import write_mnist_root
from lmvae_core.models import VAE, ExpertMixture
from lmvae_core.runtime import pick_device
from lmvae_core.training import TrainConfig, train


class ExamplesVAE(nn.Module):
    """The architecture of pytorch/examples vae/main.py."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def examples_loss(recon, x, mu, logvar):
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def mnist_root(data_root: str | None) -> str:
    """torchvision's MNIST under the data root (argument, else $LMVAE_DATA, else ./data), or the committed
    sample written as IDX files."""
    try:
        load_images("mnist", "train", data_root, source="torchvision", download=False)
        return str(paths.data_root(data_root))
    except DataMissingError:
        tmp = Path(tempfile.mkdtemp())
        x, y = load_images("mnist", "train", source="sample")
        write_mnist_root(tmp, "MNIST", (x[:, 0].numpy(), y.numpy()), (x[:10, 0].numpy(), y[:10].numpy()))
        print(f"(full MNIST not found: timing on the committed sample, {len(x)} images, written as IDX)")
        return str(tmp)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_reference(root: str, device, n_images: int) -> float:
    from torchvision import datasets, transforms

    ds = datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True,
                                         **({"num_workers": 1, "pin_memory": True} if device.type == "cuda" else {}))
    model = ExamplesVAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    seen = 0
    sync(device)
    t0 = time.perf_counter()
    while seen < n_images:
        for x, _ in loader:
            x = x.to(device)
            opt.zero_grad()
            recon, mu, logvar = model(x)
            loss = examples_loss(recon, x, mu, logvar)
            loss.backward()
            opt.step()
            seen += x.shape[0]
            if seen >= n_images:
                break
    sync(device)
    return seen / (time.perf_counter() - t0)


def time_project(x: torch.Tensor, n_images: int) -> float:
    model = VAE(hidden=(400,), latent_dim=20).to(x.device)
    data = x[:n_images]
    sync(x.device)
    t0 = time.perf_counter()
    train(model, data, TrainConfig(epochs=1, batch_size=128, binarize=None, progress=False))
    sync(x.device)
    return data.shape[0] / (time.perf_counter() - t0)


def time_mixture(x: torch.Tensor, batched: bool, steps: int, k: int = 10) -> float:
    torch.manual_seed(0)
    mix = ExpertMixture(lambda: VAE(hidden=(400,), latent_dim=20), k).to(x.device)
    opt = torch.optim.Adam(mix.parameters(), lr=1e-3)
    batches = x[: 128 * steps].split(128)
    sync(x.device)
    t0 = time.perf_counter()
    for b in batches:
        loss = mix.all_experts(b, batched=batched)["loss"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(x.device)
    return len(batches) * 128 / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=12800, help="images per timing of the single VAE")
    p.add_argument("--mixture-steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    root = mnist_root(args.data_root)
    x = load_split("mnist", "train", DataConfig(source="torchvision", root=root, device=str(device))).x
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {x.shape[0]} images")
    # warm-up, so that first-call allocation and kernel selection are not timed
    time_project(x, 1280), time_reference(root, device, 1280), time_mixture(x, True, 2), time_mixture(x, False, 2)
    ref, ours, batched, looped = [], [], [], []
    for r in range(args.rounds):
        ref.append(time_reference(root, device, args.images))
        ours.append(time_project(x, args.images))
        batched.append(time_mixture(x, True, args.mixture_steps))
        looped.append(time_mixture(x, False, args.mixture_steps))
        print(f"round {r + 1}: reference {ref[-1]:.0f} img/s, project {ours[-1]:.0f} img/s, "
              f"mixture batched {batched[-1]:.0f} img/s, loop {looped[-1]:.0f} img/s")
    m = statistics.median
    print(f"\nVAE training, images/s (median of {args.rounds}): DataLoader reference {m(ref):.0f}, "
          f"project {m(ours):.0f}  -> ratio {m(ours) / m(ref):.2f}x")
    print(f"Mixture of 10 experts, images/s: loop {m(looped):.0f}, batched {m(batched):.0f} "
          f"-> ratio {m(batched) / m(looped):.2f}x")


if __name__ == "__main__":
    main()
