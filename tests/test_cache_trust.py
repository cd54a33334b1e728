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


def test_the_real_package_hash_covers_its_sources(tmp_path):
    """The default hash is over the package itself, the papers' subpackages included: a copy of it hashes the same,
    and an edit deep inside the copy (a paper's claims) changes the hash."""
    import shutil

    from lmvae_core.results.cache import PACKAGE

    assert (PACKAGE / "results" / "cache.py").is_file()
    copy = tmp_path / "lmvae_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_hash(copy) == source_hash()
    claims = copy / "papers" / "ocm" / "claims.py"
    claims.write_text(claims.read_text() + "# an edit\n")
    source_hash.cache_clear()
    assert source_hash(copy) != source_hash()


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


# What mutation testing of results/cache.py found untested (benchmarks/mutants.py, `make mutants MODULE=cache`).

def test_the_key_is_a_fixed_function_of_the_config_and_the_code(tmp_path, monkeypatch):
    """The key is the first 16 hex digits of SHA-1 over {"code", "config"} as sorted JSON, values not JSON-native
    (a Path) written as text: a pinned value, so an entry written by the same code is found again, whatever the
    order of the config's keys; the entry's file is <root>/<name>/<key>.pt and its checkpoints <key>.partial/."""
    monkeypatch.setattr(cache, "source_hash", lambda: "0123456789abcdef")
    class Where:  # a value json cannot write: stored as its text
        def __str__(self):
            return "somewhere/x"

    cfg = {"lr": 0.001, "data": Where(), "seed": 3}
    # sha1('{"code": "0123456789abcdef", "config": {"data": "somewhere/x", "lr": 0.001, "seed": 3}}')[:16]
    assert config_key({"lr": 0.001, "seed": 3, "data": "somewhere/x"}) == "ea6d15181a70581b"
    assert config_key(cfg) == config_key({"seed": 3, "data": "somewhere/x", "lr": 0.001}) == "ea6d15181a70581b"
    file = cache_file("exp", cfg, tmp_path)
    assert file == tmp_path / "exp" / "ea6d15181a70581b.pt"
    assert cache.partial_dir(file) == tmp_path / "exp" / "ea6d15181a70581b.partial"
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "default"))  # no root given: the configured cache folder
    assert cache_file("exp", cfg) == (tmp_path / "default").resolve() / "exp" / "ea6d15181a70581b.pt"


def test_the_sidecar_records_the_config_and_the_partial_folder_lives_only_while_computing(tmp_path):
    """cached() writes <key>.json beside the entry: the config itself, sorted, one space per level, non-JSON values
    as text; while compute() runs, resume_dir() names <key>.partial/, which is removed once the result is kept."""
    cfg = {"seed": 1, "path": tmp_path / "d"}
    seen = []

    def compute():
        seen.append(cache.resume_dir())
        seen[-1].mkdir(parents=True)
        (seen[-1] / "checkpoint.pt").write_text("half")
        return 7

    assert cache.resume_dir() is None
    assert cached("exp", cfg, compute, root=tmp_path) == 7
    file = cache_file("exp", cfg, tmp_path)
    assert seen == [cache.partial_dir(file)] and not seen[0].exists() and cache.resume_dir() is None
    assert file.with_suffix(".json").read_text() == '{\n "path": "%s",\n "seed": 1\n}' % (tmp_path / "d")


def test_a_result_that_is_not_only_tensors_loads_back_and_the_hit_is_quiet_unless_verbose(tmp_path, capsys):
    """A result with arbitrary Python objects (a DataFrame) is read back as stored (a full unpickling load, not the
    weights-only one); a hit prints nothing by default and one line naming the entry with verbose=True."""
    calls = []

    def compute():
        calls.append(1)
        return {"table": pd.DataFrame({"ll": [-90.5, -91.0]}), "model": torch.nn.Linear(2, 1)}

    cfg = {"exp": 2}
    cached("exp", cfg, compute, root=tmp_path)
    capsys.readouterr()
    import warnings as _warnings
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        hit = cached("exp", cfg, compute, root=tmp_path)
    assert calls == [1] and hit["table"]["ll"].tolist() == [-90.5, -91.0] and isinstance(hit["model"], torch.nn.Linear)
    assert capsys.readouterr().out == ""
    cached("exp", cfg, compute, root=tmp_path, verbose=True)
    assert capsys.readouterr().out == f"[cache] exp: loaded {cache_file('exp', cfg, tmp_path).name}\n"
    assert calls == [1]


def test_the_corrupt_entry_warning_names_the_error_and_points_at_the_caller(tmp_path):
    """The warning names what torch.load raised (its type and message) and, with stacklevel 3, is attributed to the
    code that called cached() (this file), not to cache.py (under mutmut, whose trampolines add stack frames, only
    the latter is checked)."""
    cfg = {"exp": 3}
    cached("exp", cfg, lambda: 1, root=tmp_path)
    file = cache_file("exp", cfg, tmp_path)
    file.write_bytes(b"not a torch file")
    try:
        torch.load(file, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 -- whatever torch raises for garbage
        expected = f"({type(err).__name__}: "
    file.write_bytes(b"not a torch file")
    with pytest.warns(CorruptCacheWarning) as record:
        cached("exp", cfg, lambda: 2, root=tmp_path)
    assert expected in str(record[0].message) and "NoneType" not in str(record[0].message)
    assert not record[0].filename.endswith("cache.py")  # not attributed to the cache itself
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampolines add frames between the caller and cache.py
        assert record[0].filename == __file__


def test_store_writes_an_entry_that_cached_then_loads(tmp_path):
    """store() (a result computed elsewhere) writes the entry and its sidecar under the same key cached() uses, and
    returns the entry's file; cached() then loads it without computing."""
    cfg = {"worker": 5}
    file = cache.store("exp", cfg, {"value": 42}, root=tmp_path)
    assert file == cache_file("exp", cfg, tmp_path) and file.exists()
    assert file.with_suffix(".json").read_text() == '{\n "worker": 5\n}'
    assert cached("exp", cfg, lambda: pytest.fail("recomputed a stored entry"), root=tmp_path) == {"value": 42}
    assert cache.is_cached("exp", cfg, root=tmp_path) and not cache.is_cached("exp", {"worker": 6}, root=tmp_path)


def test_an_entry_written_on_a_gpu_loads_onto_the_cpu(tmp_path, monkeypatch):
    """Entries are loaded with map_location='cpu': one whose tensors were saved from a GPU (storage tagged 'cuda:0',
    made here without a GPU by tagging the storage so) loads as CPU tensors, without a warning or a recompute, on a
    machine with or without CUDA."""
    import torch.serialization as serialization

    cfg = {"gpu": 1}
    file = cache_file("exp", cfg, tmp_path)
    file.parent.mkdir(parents=True)
    with monkeypatch.context() as m:
        m.setattr(serialization, "location_tag", lambda storage: "cuda:0")
        torch.save({"w": torch.arange(3.0)}, file)
    import warnings as _warnings
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        result = cached("exp", cfg, lambda: pytest.fail("recomputed an entry saved from a GPU"), root=tmp_path)
    assert result["w"].device.type == "cpu" and torch.equal(result["w"], torch.arange(3.0))
