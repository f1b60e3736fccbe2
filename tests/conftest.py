"""Shared fixtures: tiny models and generated data are built once per test run, offline."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NLTK_DATA = SHARED / "nltk_data"
if NLTK_DATA.is_dir():
    os.environ.setdefault("NLTK_DATA", str(NLTK_DATA))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    path = SHARED / "benchmarks"
    if not path.is_dir():
        pytest.skip("../shared/benchmarks is not present beside this checkout")
    return path


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory) -> Path:
    from mmhallu_eval.world.tiny_models import build_tiny_model

    return build_tiny_model("llava", tmp_path_factory.mktemp("models") / "tiny-llava")


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory) -> Path:
    from mmhallu_eval.world.tiny_models import build_tiny_model

    return build_tiny_model("idefics3", tmp_path_factory.mktemp("models") / "tiny-idefics3")


@pytest.fixture(scope="session")
def pope_fixture(tmp_path_factory) -> Path:
    from mmhallu_eval.world.fixtures import build_pope_fixture

    return build_pope_fixture(tmp_path_factory.mktemp("data") / "pope", n_images=12)


@pytest.fixture(scope="session")
def mme_fixture(tmp_path_factory) -> Path:
    from mmhallu_eval.world.fixtures import build_mme_fixture

    return build_mme_fixture(tmp_path_factory.mktemp("data") / "mme", n_images=6)


@pytest.fixture(scope="session")
def finer_fixture(tmp_path_factory) -> Path:
    from mmhallu_eval.world.fixtures import build_finer_fixture

    return build_finer_fixture(tmp_path_factory.mktemp("data") / "finer", n_images=4)


@pytest.fixture(scope="session")
def coco_fixture(tmp_path_factory) -> Path:
    from mmhallu_eval.world.fixtures import build_coco_fixture

    return build_coco_fixture(tmp_path_factory.mktemp("data") / "coco", n_images=6)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Task caches (e.g. CHAIR ground truth) go to a folder of the test run, never to the user's home."""
    monkeypatch.setenv("MMHALLU_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    from mmhallu_eval.world.shapes import build_world

    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, n_train=24, n_test=12)


#: fixtures that load or build a model: a test that uses one generates or trains, so it is in the slow tier
MODEL_FIXTURES = {"tiny_llava", "tiny_idefics3", "family_dir"}
SLOW_FOLDERS = ("e2e", "browser")


def pytest_collection_modifyitems(config, items):
    """The fast tier (`-m "not slow"`) leaves out generation, training, browser and end-to-end tests: those that use
    a model fixture or live in tests/e2e or tests/browser are marked slow here, the others where they are defined."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in SLOW_FOLDERS or MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
