"""A model or corpus given as a Hub id fails within seconds, with the fixes, when the Hub is down.

Nothing here reaches the network: "the Hub" is a closed port or a silent socket on 127.0.0.1
(or the local fake Hub, for the reachable case). Without the check, huggingface_hub retries each
missing file for about 23 s before failing: the time bounds below are far above the check's few
seconds and far below that.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kedro.io import DatasetError

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.corpus import load_corpus
from embedding_distillation.datasets import CorpusDataset
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.job import prepare_encoding
from embedding_distillation.hub_reachability import HubUnreachableError, check_hub_reachable
from embedding_distillation.models import resolve_model_source
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import prepare_student
from tests.conftest import ROOT
from tests.hub.conftest import local_hub  # noqa: F401 (the fixture)

FAST_S = 20  # generous: the check takes well under a second against a closed port


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _point_the_hub_at(monkeypatch: pytest.MonkeyPatch, url: str, cache: Path) -> None:
    """Online mode, ``url`` as the Hub, ``cache`` as the Hub cache (module constants too)."""
    import datasets
    from huggingface_hub import close_session, constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    close_session()


@pytest.fixture
def down_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """The Hub endpoint is a closed port on 127.0.0.1; the Hub cache is empty."""
    from huggingface_hub import close_session

    url = f"http://127.0.0.1:{_closed_port()}"
    _point_the_hub_at(monkeypatch, url, tmp_path / "hub-cache")
    yield url
    close_session()


def _unreachable(what: str, repo_id: str, local: str) -> str:
    return (
        rf"Cannot load {what} '{repo_id}': the Hugging Face Hub at http://127\.0\.0\.1:\d+ does "
        rf"not answer \(ConnectError: .+\)\. Fixes: give {what} as {local} \(a path such as "
        r"data/01_raw/\.\.\.\); or if the files are in the Hugging Face cache \(here: .+, where "
        rf"'{repo_id}' is not\), set HF_HUB_OFFLINE=1 to load them without the network; or "
        r"check the network connection, the proxy settings \(HTTPS_PROXY\) and HF_ENDPOINT\."
    )


def _teacher(corpus):
    prepare_encoding(corpus, EncodingConfig(teacher_model="org/teacher"), ComputeConfig("cpu"))


def _student(corpus):
    prepare_student(EmbeddingTrainerConfig(student_model="org/student", device="cpu"), None)


def _corpus(corpus):
    load_corpus("org/corpus")


@pytest.mark.parametrize(
    ("load", "what", "repo_id", "local"),
    [
        (_teacher, "teacher_model", "org/teacher", "a local model folder"),
        (_student, "student_model", "org/student", "a local model folder"),
        (_corpus, "corpus", "org/corpus", "a local data file or folder"),
    ],
)
def test_a_hub_id_fails_fast_with_the_cause_and_the_fixes(
    down_hub, corpus, load, what, repo_id, local
):
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match=_unreachable(what, repo_id, local)):
        load(corpus)
    assert time.monotonic() - start < FAST_S


def test_the_corpus_dataset_fails_fast_too(down_hub):
    start = time.monotonic()
    with pytest.raises(
        DatasetError, match=_unreachable("corpus", "org/corpus", "a local data file or folder")
    ):
        CorpusDataset(source="org/corpus", credentials={"token": "hf_x"}).load()
    assert time.monotonic() - start < FAST_S


def test_a_cached_copy_is_named_with_hf_hub_offline(down_hub, tmp_path):
    snapshot = tmp_path / "hub-cache" / "models--org--teacher" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    with pytest.raises(
        HubUnreachableError,
        match=(
            r"'org/teacher' is in the Hugging Face cache \(.+0123abcd\): set HF_HUB_OFFLINE=1 to "
            r"load it from there without the network"
        ),
    ):
        resolve_model_source("org/teacher", what="teacher_model")


def test_a_silent_endpoint_times_out_after_the_timeout(monkeypatch, tmp_path):
    """A Hub that accepts the connection and never answers (a black hole, a stuck proxy)."""
    from huggingface_hub import close_session

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        _point_the_hub_at(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}", tmp_path)
        start = time.monotonic()
        with pytest.raises(HubUnreachableError, match=r"does not answer \(ReadTimeout"):
            check_hub_reachable("org/teacher", repo_type="model", what="teacher", timeout=0.5)
        elapsed = time.monotonic() - start
        close_session()
    assert 0.4 < elapsed < FAST_S


def test_offline_mode_sends_nothing(down_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert resolve_model_source("org/teacher", what="teacher_model") == "org/teacher"


def test_a_hub_that_answers_passes_with_one_request(local_hub):  # noqa: F811
    """Any answer counts (the fake Hub has no page at /): the library reports missing repos."""
    check_hub_reachable("alice/teacher", repo_type="model", what="teacher_model")
    assert local_hub.requests == ["HEAD /"]


def test_the_environment_of_a_user_is_honoured(tmp_path):
    """HF_ENDPOINT and HF_HUB_OFFLINE set before Python starts, as a user would set them."""
    script = textwrap.dedent(
        """
        import time
        from embedding_distillation.models import resolve_model_source
        start = time.monotonic()
        try:
            resolve_model_source("org/teacher", what="teacher_model")
        except ConnectionError as error:
            print(type(error).__name__, round(time.monotonic() - start, 1), error)
        """
    )
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    env |= {"HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    name, seconds, message = result.stdout.split(" ", 2)
    assert name == "HubUnreachableError", result.stderr[-2000:]
    assert float(seconds) < FAST_S
    assert "set HF_HUB_OFFLINE=1" in message
