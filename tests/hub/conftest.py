"""The ``local_hub`` fixture: a Hub-compatible server on 127.0.0.1 for the duration of a test.

The suite runs with ``HF_HUB_OFFLINE=1``; ``huggingface_hub`` and ``datasets`` read that (and
``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET``) once at import, so the fixture patches their module
constants as well as the environment, and undoes both afterwards.
"""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.hub.server import FakeHub, HubServer

TOKEN = "hf_aliceWriteToken0123456789"
OTHER_TOKEN = "hf_bobWriteToken0123456789"
PRIVATE_TEXTS = ["a private sentence", "another private one", "and a third"]


@pytest.fixture
def local_hub(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """A fresh local Hub where ``TOKEN`` belongs to alice and ``OTHER_TOKEN`` to bob."""
    import datasets
    from huggingface_hub import close_session, constants

    hub = FakeHub(tokens={TOKEN: "alice", OTHER_TOKEN: "bob"})
    server = HubServer(hub)
    server.start()
    cache = tmp_path_factory.mktemp("hf_hub_cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        hub.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache / "no-token"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(
        datasets.config,
        "HUB_DATASETS_URL",
        hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
    )
    close_session()  # a fresh shared client (no timeout left over from a test)
    yield hub
    close_session()
    server.shutdown()
    server.server_close()


@pytest.fixture
def private_corpus(local_hub, tmp_path, monkeypatch) -> str:
    """``alice/private-corpus``: a private dataset repo with one Parquet file (nothing cached)."""
    import datasets
    from huggingface_hub import HfApi

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": PRIVATE_TEXTS}), buffer)
    api = HfApi(endpoint=local_hub.url, token=TOKEN)
    api.create_repo("alice/private-corpus", repo_type="dataset", private=True)
    api.upload_file(
        path_or_fileobj=buffer.getvalue(),
        path_in_repo="data/train.parquet",
        repo_id="alice/private-corpus",
        repo_type="dataset",
    )
    return "alice/private-corpus"
