"""A cache that can be trusted: keyed by the code, corrupt entries recomputed, files written atomically."""
import os

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from lmvae_core.results import cache
from lmvae_core.results.atomic import atomic_write
from lmvae_core.results.cache import CorruptCacheWarning, cache_file, cached, config_key, source_hash

matplotlib.use("Agg")


def test_changing_a_source_file_changes_the_key(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    before = source_hash(pkg)
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    source_hash.cache_clear()  # computed once per process; a new process sees the edit
    assert source_hash(pkg) != before
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    source_hash.cache_clear()
    assert source_hash(pkg) == before

    cfg = {"lr": 1e-3}
    key = config_key(cfg)
    monkeypatch.setattr(cache, "source_hash", lambda: "another version of the code")
    assert config_key(cfg) != key


def test_the_real_package_hash_covers_its_sources():
    assert len(source_hash()) == 16 and source_hash() == source_hash()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_cache_entry_is_reported_moved_aside_and_recomputed(tmp_path, damage):
    calls = []

    def compute():
        calls.append(1)
        return {"weights": torch.arange(1000.0), "n": len(calls)}

    cfg = {"exp": 1}
    assert cached("exp", cfg, compute, root=tmp_path)["n"] == 1
    file = cache_file("exp", cfg, tmp_path)
    data = file.read_bytes()
    file.write_bytes(b"not a torch file" if damage == "garbage" else data[: len(data) // 2])
    with pytest.warns(CorruptCacheWarning, match="could not be read"):
        result = cached("exp", cfg, compute, root=tmp_path)
    assert result["n"] == 2 and torch.equal(result["weights"], torch.arange(1000.0))
    assert file.with_name(file.name + ".corrupt").exists()
    assert cached("exp", cfg, compute, root=tmp_path)["n"] == 2  # the new entry is read back
    assert not [p for p in file.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")

    def half_then_fail(tmp):
        tmp.write_text("new, half")
        raise KeyboardInterrupt  # a run killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["table.csv"]


def test_seaborn_heatmap_and_bars_over_seeds():
    from lmvae_core.results import plots

    fig = plots.heatmap(np.array([[1.0, np.nan], [3.25, 4.0]]), ["a", "b"], ["x", "y"], fmt="{:.1f}")
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["1.0", "3.2", "4.0"]  # NaN cells stay blank
    frame = pd.DataFrame({"method": ["A"] * 3 + ["B"] * 3, "ll": [-10.0, -12.0, -11.0, -20.0, -20.0, -20.0],
                          "seed": [0, 1, 2] * 2, "stream": "s"})
    fig = plots.bars_over_seeds(frame, "method", "ll", panel="stream", reference={("s", "A"): -9.0})
    heights = sorted(p.get_height() for p in fig.axes[0].patches)
    assert heights == pytest.approx([-20.0, -11.0])
    # error bars (one line per bar, caps included): A's interval lies within its seeds' range, B's seeds agree
    spans = [float(np.nanmax(ln.get_ydata()) - np.nanmin(ln.get_ydata())) for ln in fig.axes[0].lines]
    assert 0 < spans[0] <= 2.0 + 1e-9 and spans[1] == 0
