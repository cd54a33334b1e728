"""A new notebook is one paper package, one notebook source and one registry line: a toy paper registered here
is seen by setup(), the data check, `lmvae reproduce`'s notebook selection and executor hand-off, the paper-shape
listing, `lmvae readme`'s claims table and gallery and the paper-cost count, with no other list to edit."""
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
TOY_STEPS = textwrap.dedent('''
    from lmvae_core.experiments.paper_steps import Counter, steps, vae
    from toy_paper import SETTINGS

    def count(s=None):
        s = s or SETTINGS["paper"]
        c = Counter("99_toy")
        c.add("toy VAE", vae((8,), 2, 100), steps(60_000, 100, s["epochs"]))
        return c.jobs

    def half_budget(s):
        return dict(s, epochs=s["epochs"] // 2)
''')


@pytest.fixture
def toy_paper(tmp_path, monkeypatch):
    (tmp_path / "toy_paper").mkdir()
    (tmp_path / "toy_paper" / "__init__.py").write_text(TOY)
    (tmp_path / "toy_paper" / "steps.py").write_text(TOY_STEPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register(registry.Notebook("99_toy", "toy_paper", "toy.png", grid=True))
    yield "99_toy"
    registry.unregister("99_toy")
    for name in ("toy_paper", "toy_paper.steps"):
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

    from lmvae_core.experiments import paper_steps
    jobs = {j.what: j.units for j in paper_steps.counters()[toy_paper]()}
    assert jobs == {"toy VAE": 6000, "half-budget run: toy VAE": 3000}  # 600 steps an epoch, 10 epochs and 5


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


# ---- a new method: one model, one learner, one registry line -------------------------------------------------------
def test_a_toy_method_runs_in_the_benchmark_and_reloads(sample_cfg, monkeypatch, tmp_path):
    """A model class registered with `register_model`, a `BaseLearner` subclass (subclassing registers it for
    `BaseLearner.load`) and one line in notebook 05's METHODS: the benchmark trains it through the stream driver,
    evaluates it with the shared code, and a saved learner reloads to the same log-likelihoods."""
    import math

    import torch
    from torch import nn

    from lmvae_core.continual import BaseLearner
    from lmvae_core.papers.benchmark import experiments as B
    from lmvae_core.models.base import register_model
    from lmvae_core.training.classifier import train_classifier
    from lmvae_core.training.loop import TrainConfig, make_optimizer

    @register_model
    class PixelModel(nn.Module):  # independent Bernoulli pixels: the simplest density of 28x28 images
        def __init__(self, shape=(1, 28, 28)):
            super().__init__()
            self.shape = tuple(shape)
            self.logits = nn.Parameter(torch.zeros(self.shape))

        def spec(self):
            return {"shape": list(self.shape)}

        @classmethod
        def from_spec(cls, spec):
            return cls(spec["shape"])

        def log_likelihood(self, x):
            return -nn.functional.binary_cross_entropy_with_logits(
                self.logits.expand_as(x), x, reduction="none").flatten(1).sum(1)

        def loss(self, x):
            nll = -self.log_likelihood(x).mean()
            return nll, {"loss": nll.detach()}

    class PixelLearner(BaseLearner):
        def __init__(self, device="cpu", **common):
            super().__init__(device, **common)
            self.model = PixelModel().to(self.device)
            self.init_args = self.common_args()

        def fit_task(self, task):
            optimizer = make_optimizer(list(self.model.parameters()), self.optim)
            return {"history": self.fit(task, self.model.loss, optimizer, self.model)}

        @torch.no_grad()
        def log_likelihood(self, x, k):
            return self.model.log_likelihood(x)

        def sample(self, n, seed=0):
            p = torch.sigmoid(self.model.logits).detach().expand(n, *self.model.shape)
            return torch.bernoulli(p, generator=torch.Generator().manual_seed(seed))

    monkeypatch.setitem(B.METHODS, "Pixel model", lambda s, seed, device: PixelLearner(device, lr=0.05))
    s = dict(B.SETTINGS["smoke"], iwae_k=2, n_generated=40, fc_max_epochs=1)
    stream = B.build_stream("split_mnist", s, sample_cfg)
    joint = stream.joint_train()
    clf = train_classifier(joint.x, joint.y, TrainConfig(epochs=1), seed=0)
    r = B.evaluate_run(stream, "Pixel model", s, 0, "cpu", clf)
    assert r["real_rows"] == [s["epochs"] * len(t.train_x) for t in stream.tasks]  # the benchmark's one budget
    assert -600 < r["final_ll"] < -100 and math.isfinite(r["forgetting"]) and r["params"] == 784
    learner = B.METHODS["Pixel model"](s, 0, "cpu")
    learner.model.logits.data.normal_()
    path = learner.save(tmp_path / "pixel.pt")
    again = BaseLearner.load(path)
    x = stream.tasks[0].test_x
    assert type(again) is PixelLearner and torch.equal(again.log_likelihood(x, 1), learner.log_likelihood(x, 1))
