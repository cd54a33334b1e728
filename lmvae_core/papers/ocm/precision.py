"""The precision OCM's component trains in on a paper run: chosen from a measurement, never typed (issue 38, item 3).

`benchmarks/ocm_precision.py` trains the paper-size component (784-200-200-50, the 50-sample ELBO) in fp32, in bf16
autocast and, on CUDA, with TF32 matmuls, from the same seeds, and writes per way the paired IWAE difference from
fp32 with its 95% interval, a verdict against TOLERANCE and its training speed relative to fp32, measured side by
side (`benchmarks/results/ocm_precision_<device type>.json`).

A profile whose `precision` is 'measured' (the paper profile) trains in the fastest way that was both `within` (its
whole interval inside +-TOLERANCE nats of fp32) and faster than fp32, measured on this very kind of device (the GPU's
name; the CPU's architecture and core count: bf16's speed on a CPU depends on its bf16 units); in fp32 where no
measurement of this device exists, or none qualifies. 'fp32' and 'bf16' (and 'tf32' on CUDA) set it by hand.
The choice goes into the run's cache key and into the claims' notes (claims.py), with its evidence.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ...paths import benchmark_results
from ...training.loop import tf32_matmuls

TOLERANCE = 0.3  # nats: a faster precision is used where its difference from fp32 is surely smaller
SETTINGS = ("fp32", "bf16", "tf32", "measured")


@dataclass(frozen=True)
class Precision:
    name: str  # 'fp32' | 'bf16' | 'tf32'
    reason: str  # why this one, for the claims' notes

    @property
    def autocast(self) -> str | None:
        """The `autocast` of OCMLearner and TrainConfig for this precision."""
        return "bf16" if self.name == "bf16" else None

    @property
    def learner_args(self) -> dict:
        """OCMLearner's keyword arguments for this precision (none in fp32, so saved learners keep their keys)."""
        return {"autocast": "bf16"} if self.name == "bf16" else {"tf32": True} if self.name == "tf32" else {}

    def matmuls(self):
        """TF32 matmuls inside for 'tf32' (training/loop.py's `tf32_matmuls`); the others leave them as they are."""
        return tf32_matmuls(self.name == "tf32")


FP32 = Precision("fp32", "set by the profile")


def this_device(device_type: str) -> str:
    """The device as the measurement names it (benchmarks/ocm_precision.py writes this string)."""
    if device_type == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def measurement_file(device_type: str, results: Path | None = None) -> Path:
    return (results or benchmark_results()) / f"ocm_precision_{device_type}.json"


def measured(device_type: str, results: Path | None = None) -> Precision:
    """The fastest precision measured `within` TOLERANCE of fp32 and faster than it on this device; else fp32."""
    path = measurement_file(device_type, results)
    if not path.exists():
        return Precision("fp32", f"no precision measurement on a {device_type} device ({path.name})")
    data = json.loads(path.read_text())
    here = this_device(device_type)
    if data["device"] != here:
        return Precision("fp32", f"the precision was measured on {data['device']}, not on this {here} ({path.name})")
    ways = data.get("differences_vs_fp32", {})
    usable = {name: w for name, w in ways.items()
              if w["verdict"] == "within" and w["speed_vs_fp32"] > 1.0}
    summary = "; ".join(f"{name} {w['mean']:+.2f} nats [{w['lo']:+.2f}, {w['hi']:+.2f}] over {w['seeds']} seeds, "
                        f"{w['speed_vs_fp32']:.2f}x the speed" for name, w in ways.items())
    where = f"{path.name}, {data['epochs']} epochs on {data['device']}"
    if not usable:
        return Precision("fp32", f"no faster precision measured within {TOLERANCE} nats of fp32 ({summary}; {where})")
    name, w = max(usable.items(), key=lambda kv: kv[1]["speed_vs_fp32"])
    return Precision(name, f"within {TOLERANCE} nats of fp32 and {w['speed_vs_fp32']:.2f}x its speed: {name} - fp32 "
                           f"{w['mean']:+.2f} nats [{w['lo']:+.2f}, {w['hi']:+.2f}] over {w['seeds']} seeds ({where})")


def resolve(setting: str, device: torch.device | str, results: Path | None = None) -> Precision:
    """A profile's `precision` setting on this device."""
    device = torch.device(device)
    if setting not in SETTINGS:
        raise ValueError(f"precision must be one of {SETTINGS}, got {setting!r}")
    if setting == "measured":
        return measured(device.type, results)
    if setting == "tf32" and device.type != "cuda":
        raise ValueError(f"TF32 matmuls need a CUDA device, not {device.type}")
    return FP32 if setting == "fp32" else Precision(setting, "set by the profile")
