"""`lmvae reproduce --dry-run` (lmvae_core/dry_run.py): data, settings, device memory and time, with nothing run."""
import pytest

from lmvae_core import cli
from lmvae_core.dry_run import HEADROOM, dry_run, memory_lines


def _cost(peak: int) -> dict:
    kind = {"kind": "OCM component, batch 64 x 50 samples", "train": True, "peak_bytes": peak}
    small = {"kind": "IWAE forward", "train": False, "peak_bytes": None}
    return {"notebooks": {"04_ocm": {"cpu_hours": 4000.0, "gpu_hours": 40.0, "kinds": [small, kind]}}}


def test_a_step_larger_than_the_device_is_a_problem_and_a_smaller_one_fits():
    gib = 2**30
    lines, problems = memory_lines(["04_ocm"], _cost(int(7 * gib)), 8 * gib, "a GPU")
    assert problems and "04_ocm" in problems[0] and "DOES NOT FIT" in lines[1]  # 7 > 0.8 x 8 GiB
    lines, problems = memory_lines(["04_ocm"], _cost(int(HEADROOM * 8 * gib) - 1), 8 * gib, "a GPU")
    assert not problems and " fits " in lines[1] and "OCM component" in lines[1]
    lines, problems = memory_lines(["00_mixture_of_vaes"], _cost(1), 8 * gib, "a GPU")
    assert not problems and "no estimate" in lines[1]


def test_paper_dry_run_reports_missing_data_memory_and_projected_hours(tmp_path):
    report = dry_run("paper", "04", data_root=str(tmp_path), cost=_cost(2**40), device="cuda", memory=80 * 2**30)
    text = report.text()
    assert not report.ok
    assert "missing" in text and any("dataset split" in p for p in report.problems)  # an empty data root
    assert any("04_ocm" in p and "GiB" in p for p in report.problems)  # 1 TiB does not fit 80 GiB
    assert "40.0 h" in text  # the projected GPU hours of the cost file
    from lmvae_core.papers.ocm.precision import measured  # the precision the committed measurement picks on CUDA
    chosen = measured("cuda")
    assert f"OCM's memory passes (04_ocm): {chosen.name} ({chosen.reason})" in text


def test_smoke_dry_run_on_the_committed_sample_is_clean():
    report = dry_run("smoke", "00,05", device="cpu", memory=8 * 2**30, cost={})
    assert report.ok, report.text()
    assert "Peak memory" not in report.text()  # memory is checked for the paper sizes only


def test_cli_dry_run_exit_codes(capsys, tmp_path):
    assert cli.main(["reproduce", "--profile", "smoke", "--only", "00", "--dry-run"]) == 0
    assert "nothing stands in the way" in capsys.readouterr().out
    assert cli.main(["reproduce", "--profile", "quick", "--only", "00", "--dry-run",
                     "--data-root", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().out
    assert cli.main(["reproduce", "--only", "99", "--dry-run"]) == 2
