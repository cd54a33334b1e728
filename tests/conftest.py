import pytest
import torch

# The test models are tiny: one intra-op thread is faster than several competing ones.
torch.set_num_threads(1)


@pytest.fixture
def sample_cfg():
    from lmvae_core.data import DataConfig

    return DataConfig(source="sample", device="cpu")


@pytest.fixture
def mnist_sample(sample_cfg):
    from lmvae_core.data import load_split

    return load_split("mnist", "test", sample_cfg)


@pytest.fixture(autouse=True)
def isolated_work_dir(tmp_path, monkeypatch):
    """Caches and smoke figures of a test go to a temporary folder, never into the repository."""
    monkeypatch.setenv("LMVAE_WORK", str(tmp_path / "work"))
    monkeypatch.delenv("LMVAE_OUT", raising=False)
    monkeypatch.delenv("LMVAE_CACHE", raising=False)


@pytest.fixture(autouse=True)
def no_notebook_state_between_tests():
    """setup() declares a notebook's datasets and its offline switch for the whole process (a kernel runs one
    notebook); tests run many in one process, so both are lifted after each test."""
    yield
    from lmvae_core.data.datasets import declare, set_offline

    declare(None)
    set_offline(None)
