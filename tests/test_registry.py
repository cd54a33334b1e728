"""A new notebook is one experiments module, one notebook source and one registry line: a toy paper registered here
is seen by setup(), the data check, `lmvae reproduce`'s notebook selection and executor hand-off, the paper-shape
listing and `lmvae readme`'s claims table and gallery, with no other list to edit."""
import sys
import textwrap

import pytest

from lmvae_core.experiments import registry

TOY = textwrap.dedent('''
    SETTINGS = {"smoke": {"epochs": 1, "datasets": ("fashion",)}, "paper": {"epochs": 10, "datasets": ("fashion",)}}
    PAPER_SHAPE = {"epochs": 1}
    SETTINGS["paper-shape"] = dict(SETTINGS["paper"], **PAPER_SHAPE)

    def datasets_needed(s):
        return [*s["datasets"], "mnist"]
''')


@pytest.fixture
def toy_paper(tmp_path, monkeypatch):
    (tmp_path / "toy_paper").mkdir()
    (tmp_path / "toy_paper" / "__init__.py").write_text("")
    (tmp_path / "toy_paper" / "experiments.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register(registry.Notebook("99_toy", "toy_paper.experiments", "toy.png", grid=True))
    yield "99_toy"
    registry.unregister("99_toy")
    for name in ("toy_paper", "toy_paper.experiments"):
        sys.modules.pop(name, None)


def test_a_registered_toy_paper_reaches_every_consumer(toy_paper, tmp_path, monkeypatch):
    from lmvae_core import readme, reproduce
    from lmvae_core.experiments.common import setup
    from lmvae_core.experiments.needs import check, datasets_for

    assert registry.notebooks()[-1] == toy_paper and toy_paper in registry.grid_notebooks()
    assert datasets_for(toy_paper, "smoke") == ["fashion", "mnist"]
    assert {(r.dataset, r.split) for r in check([toy_paper], "smoke")} == {
        (d, s) for d in ("fashion", "mnist") for s in ("train", "test")}
    run = setup(toy_paper, "smoke", 0, "cpu", out_dir=str(tmp_path / "out"), progress=False,
                settings=registry.experiment_module(toy_paper).SETTINGS)
    assert run.settings == {"epochs": 1, "datasets": ("fashion",)}

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    (nb_dir / f"{toy_paper}.ipynb").write_text("{}")
    assert reproduce.select_notebooks("99", nb_dir) == [toy_paper]

    figures = tmp_path / "figures"
    (figures / toy_paper).mkdir(parents=True)
    (figures / toy_paper / "toy.png").write_bytes(b"png")
    (figures / toy_paper / "claims.csv").write_text(
        "kind,claim,paper,ours,criterion,verdict\nsanity,toy claim,1,1,>= 1,reproduced\n")
    text = readme.results_section(figures, paper_logs=tmp_path / "none")
    assert "toy claim" in text and f"figures/{toy_paper}/toy.png" in text
    assert f"| {toy_paper} |" in readme.paper_shape_section()


def test_unknown_notebooks_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown notebook '98_none'"):
        registry.get("98_none")
    from lmvae_core.experiments.common import setup

    with pytest.raises(ValueError, match="unknown notebook"):
        setup("98_none", "smoke", 0, "cpu")


def test_the_registry_lists_every_notebook_source_in_order():
    from lmvae_core import paths

    sources = sorted(p.stem for p in (paths.repo_root() / "notebooks" / "src").glob("0*.py"))
    assert list(registry.notebooks()) == sources
    assert set(registry.grid_notebooks()) == {"02_lifelong_generative_modeling", "03_binarized_regularization",
                                              "04_ocm", "05_benchmark"}
