import json

import pandas as pd
import pytest

from lmvae_core.experiments.common import setup
from lmvae_core.results import AtLeast, AtMost, Claim, Outputs, Within, cached, is_cached


def test_cache_hits_and_misses(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    cfg = {"lr": 1e-3, "layers": [400, 20]}
    assert cached("exp", cfg, compute, root=tmp_path) == {"value": 1}
    assert cached("exp", cfg, compute, root=tmp_path) == {"value": 1}  # hit
    assert len(calls) == 1 and is_cached("exp", cfg, root=tmp_path)
    assert cached("exp", {**cfg, "lr": 2e-3}, compute, root=tmp_path) == {"value": 2}  # miss: other config
    assert cached("exp", cfg, compute, root=tmp_path, force=True) == {"value": 3}  # force retrains
    assert cached("exp", cfg, compute, root=tmp_path) == {"value": 3}


def test_claim_verdicts_follow_their_rules():
    sanity = dict(kind="sanity")  # no half-budget value needed: these test the rules alone
    assert Claim("c", "p", 0.9, AtLeast(0.8), "quick", **sanity).verdict == "reproduced"
    assert Claim("c", "p", 0.7, AtLeast(0.8, partly=0.6), "quick", **sanity).verdict == "partly"
    assert Claim("c", "p", 0.5, AtLeast(0.8, partly=0.6), "quick", **sanity).verdict == "not reproduced"
    assert Claim("c", "p", 3.0, AtMost(2.0, partly=4.0), "quick", **sanity).verdict == "partly"
    assert Claim("c", "p", -130.0, Within(-132.07, 5.0), "quick", **sanity).verdict == "reproduced"
    assert Claim("c", "p", -150.0, Within(-132.07, 5.0, 20.0), "quick", **sanity).verdict == "partly"
    assert Claim("c", "p", float("nan"), Within(0, 1), "quick", **sanity).verdict == "not comparable"


def test_outputs_write_figures_tables_and_claims(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Outputs(tmp_path / "nb")
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    out.figure(fig, "curve")
    out.table(pd.DataFrame({"a": [1.0, 2.5]}), "t")
    out.claims([Claim("x beats y", "yes", 2.0, AtLeast(1.0), "smoke", kind="sanity")], "nb")
    files = sorted(p.name for p in (tmp_path / "nb").iterdir())
    assert files == ["claims.csv", "claims.md", "curve.png", "t.csv", "t.md"]
    assert pd.read_csv(tmp_path / "nb" / "claims.csv")["verdict"].tolist() == ["reproduced"]


def test_setup_rejects_bad_parameters_at_once():
    with pytest.raises(ValueError, match="unknown profile"):
        setup("00_mixture_of_vaes", profile="fast")
    with pytest.raises(TypeError, match="seed must be int"):
        setup("00_mixture_of_vaes", profile="smoke", seed="1")
    with pytest.raises(TypeError, match="force must be bool"):
        setup("00_mixture_of_vaes", profile="smoke", force="yes")
    with pytest.raises(ValueError, match="unknown notebook"):
        setup("07_gan", profile="smoke")


def test_smoke_runs_never_write_into_committed_figures(tmp_path):
    from lmvae_core import paths

    run = setup("00_mixture_of_vaes", profile="smoke")
    assert paths.repo_root() / "figures" not in run.out.dir.parents
    assert run.out.dir.parent == tmp_path / "work" / "smoke" / "figures"
    explicit = setup("00_mixture_of_vaes", profile="smoke", out_dir=str(tmp_path / "mine"))
    assert explicit.out.dir == tmp_path / "mine" / "00_mixture_of_vaes"


def test_cli_rejects_unknown_profile_and_notebook(capsys):
    from lmvae_core.cli import main

    with pytest.raises(SystemExit) as err:
        main(["reproduce", "--profile", "fast"])
    assert err.value.code == 2
    assert main(["reproduce", "--profile", "smoke", "--only", "99"]) == 2
    assert "no notebook matches" in capsys.readouterr().err


def test_readme_section_regenerates_from_claims(tmp_path):
    from lmvae_core.readme import update_readme

    figs = tmp_path / "figures"
    Outputs(figs / "00_mixture_of_vaes").claims([Claim("experts specialise", "q", 0.8, AtLeast(0.7), "quick", kind="sanity")],
                                                 "00_mixture_of_vaes")
    (figs / "00_mixture_of_vaes" / "run_info.json").write_text(json.dumps(
        {"profile": "quick", "commit": "abc", "seconds": 12.0}))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nstale-section\n<!-- results:end -->\noutro\n")
    update_readme(readme, figs)
    first = readme.read_text()
    update_readme(readme, figs)
    assert readme.read_text() == first
    assert "experts specialise" in first and "reproduced" in first and "stale-section" not in first and "outro" in first


def test_readme_reports_cold_times_and_says_when_none_was_measured(tmp_path):
    from lmvae_core.readme import update_readme

    figs = tmp_path / "figures"
    for name, extra in (("00_mixture_of_vaes", {}),
                        ("01_lmvae", {"cold_seconds": 1234.4, "cold_commit": "def", "cold_executor": "local",
                                      "cold_cpus": 2})):
        Outputs(figs / name).claims([Claim("a claim", "q", 0.8, AtLeast(0.7), "quick", kind="sanity")], name)
        (figs / name / "run_info.json").write_text(json.dumps(
            {"profile": "quick", "commit": "abc", "seconds": 12.0} | extra))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    text = update_readme(readme, figs).read_text()
    row = lambda name: next(line for line in text.splitlines() if line.startswith(f"| {name}"))  # noqa: E731
    assert "not measured" in row("00_mixture_of_vaes")
    assert "1234 (commit def, local, 2 CPUs)" in row("01_lmvae") and "reproduced 1" in row("01_lmvae")
    assert "| yes " in row("01_lmvae") and "| not measured " in row("00_mixture_of_vaes").split("CPUs")[-1]
    assert "0.34 h in all for the 1 of 2 notebooks measured, within the 4-hour budget" in text
    assert "each within 60 min." in text


def test_cold_run_records_the_machine_probe_and_the_readme_shows_it(tmp_path):
    from lmvae_core.readme import update_readme
    from lmvae_core.reproduce import cold_time, machine_probe

    probe = machine_probe(steps=5, warmup=1)  # real VAE steps on one thread: a positive, finite rate
    assert 0 < probe < float("inf")
    info = cold_time("abc", 100.04, "local", probe=123.46)
    assert info["cold_probe_steps_per_s"] == 123.5 and info["cold_seconds"] == 100.0
    assert "cold_probe_steps_per_s" not in cold_time("abc", 1.0, None)  # older runs have no probe
    figs = tmp_path / "figures"
    Outputs(figs / "01_lmvae").claims([Claim("a claim", "q", 0.8, AtLeast(0.7), "quick", kind="sanity")], "01_lmvae")
    (figs / "01_lmvae" / "run_info.json").write_text(json.dumps({"profile": "quick", "commit": "abc", "seconds": 1.0}
                                                                | info))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    text = update_readme(readme, figs).read_text()
    assert f"100 (commit abc, local, {info['cold_cpus']} CPUs, probe 124 steps/s)" in text


def test_readme_budget_flags_notebooks_over_60_minutes_and_the_total_over_4_hours(tmp_path):
    from lmvae_core.readme import update_readme

    figs = tmp_path / "figures"
    for name, cold in (("00_mixture_of_vaes", 3600.0), ("03_binarized_regularization", 4052.4),
                       ("04_ocm", 5503.2), ("05_benchmark", 3000.0)):
        Outputs(figs / name).claims([Claim("a claim", "q", 0.8, AtLeast(0.7), "quick", kind="sanity")], name)
        (figs / name / "run_info.json").write_text(json.dumps(
            {"profile": "quick", "commit": "abc", "seconds": cold, "cold_seconds": cold, "cold_commit": "abc",
             "cold_executor": "local", "cold_cpus": 2}))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    text = update_readme(readme, figs).read_text()
    row = lambda name: next(line for line in text.splitlines() if line.startswith(f"| {name}"))  # noqa: E731
    assert "| yes " in row("00_mixture_of_vaes")  # exactly 60 min is within
    assert "no (+7.5 min)" in row("03_binarized_regularization") and "no (+31.7 min)" in row("04_ocm")
    assert "4.49 h in all for the 4 of 4 notebooks measured, over the 4-hour budget" in text
    assert "over 60 min each: 03, 04." in text


def test_a_sample_profile_stamps_its_figures_and_the_quick_profile_does_not(tmp_path):
    """A smoke figure says it is one (its samples are grey noise by design); quick and paper figures carry no stamp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmvae_core.experiments.common import SAMPLE_STAMP

    stamp = SAMPLE_STAMP.format(profile="smoke")
    fig, _ = plt.subplots()
    Outputs(tmp_path / "smoke", stamp=stamp).figure(fig, "f")
    Outputs(tmp_path / "smoke", stamp=stamp).figure(fig, "g")  # saved twice: stamped once
    assert [t.get_text() for t in fig.texts] == [stamp] and stamp.startswith("smoke profile:")
    plain, _ = plt.subplots()
    Outputs(tmp_path / "quick").figure(plain, "f")
    assert plain.texts == [] and (tmp_path / "quick" / "f.png").exists()
    plt.close("all")


def test_setup_stamps_exactly_the_profiles_that_run_on_the_sample(tmp_path, monkeypatch):
    from lmvae_core.experiments import common
    from lmvae_core.experiments.common import setup

    monkeypatch.setattr(common, "ensure", lambda *a, **k: None)  # quick and paper need the full data root otherwise
    for profile, stamped in (("smoke", True), ("paper-shape", True), ("quick", False), ("paper", False)):
        run = setup("00_mixture_of_vaes", profile, 0, "cpu", out_dir=str(tmp_path), progress=False)
        assert bool(run.out.stamp) is stamped and (not stamped or profile in run.out.stamp)


def test_a_pipe_inside_a_cell_does_not_shift_the_markdown_columns(tmp_path):
    """A claim's text with |mu| once split its row, and the verdict column showed the value of another column."""
    import pandas as pd

    from lmvae_core.results.writers import Outputs, markdown_table

    frame = pd.DataFrame({"claim": ["Var of max(|mu| - r, 0)", "plain"], "verdict": ["not comparable", "reproduced"]})
    text = markdown_table(frame, index=False)
    for line in text.splitlines():
        assert len(line.replace("\\|", "").split("|")) == 4, line  # two cells: three bars, four pieces
    assert "max(\\|mu\\| - r, 0) | not comparable |" in text
    Outputs(tmp_path).table(frame, "claims")
    assert (tmp_path / "claims.md").read_text() == text + "\n"
    assert pd.read_csv(tmp_path / "claims.csv")["claim"][0] == "Var of max(|mu| - r, 0)"  # the CSV keeps the text
