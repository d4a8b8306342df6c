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


# The store's own suites (test_store, test_importers, test_raters: the `any_store` fixture) run on both databases.
# PostgreSQL: the server named by HARNESS_TEST_PG (`make test` starts Debian's on 127.0.0.1 and sets
# it); each test gets a database of its own, dropped afterwards. Unset: those cases are skipped.
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("HARNESS_TEST_PG")
    if not url:
        pytest.skip("HARNESS_TEST_PG not set (make test starts a local PostgreSQL and sets it)")
    return url


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh, empty database on the test server; its URL."""
    import secrets
    from urllib.parse import urlsplit

    import psycopg

    name = f"harness_test_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield urlsplit(pg_admin_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(pg_admin_url, autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=BACKENDS)
def any_store(request, tmp_path):
    """A Store on SQLite and, as a second case, on PostgreSQL (pg_url)."""
    from harness.store import Store

    if request.param == "sqlite":
        return Store(tmp_path / "home")
    return Store(tmp_path / "home", url=request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} missing (CI lays ../shared beside the clone)")
    return SHARED_DATA
