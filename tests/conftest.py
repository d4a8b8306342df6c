"""Shared fixtures. The embedded model is converted once per session into a session cache dir
and loaded once; tests that train deep-copy it rather than reload."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """Where the embedded model is converted; reuses $HARNESS_MODEL_CACHE when set (developers)."""
    path = Path(os.environ.get("HARNESS_MODEL_CACHE") or tmp_path_factory.mktemp("models"))
    os.environ["HARNESS_MODEL_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def embedded(model_cache):
    """(model, tokenizer) of the embedded SmolLM2-135M-Instruct, fp32 on CPU, frozen, loaded once.
    Tests must not modify it: copy.deepcopy it to train."""
    from harness.config import ModelConfig
    from harness.models import load_model

    model, tok = load_model(ModelConfig(), for_training=False)
    return model, tok


@pytest.fixture(scope="session")
def embedded_path(model_cache) -> str:
    from harness.models import resolve_model

    return resolve_model("smollm2-135m-instruct")


@pytest.fixture
def store(tmp_path):
    from harness.store import Store

    return Store(tmp_path / "home")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} missing (CI lays ../shared beside the clone)")
    return SHARED_DATA
