"""One encoding run (``encode_to_shards``): one writer per folder, claimed before the teacher loads.

The API's ``generate`` runs it: in a worker process that holds the folder (or is killed with
SIGKILL), then in this process, which is refused at once, naming the worker, or resumes the
folder the killed worker left.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import Dataset

from embedding_distillation import TeacherEmbeddingsGenerator
from embedding_distillation.encoding.lock import FolderInUseError
from embedding_distillation.encoding.shards import ShardStore

GENERATE_WORKER = """
import sys, time
import pytest
from datasets import Dataset
from embedding_distillation import TeacherEmbeddingsGenerator
from embedding_distillation.encoding.lock import FolderInUseError
from tests.spies import hold_until, slow_shards

teacher, texts_file, out, delay, gate = sys.argv[1:6]
if float(delay):
    slow_shards(pytest.MonkeyPatch(), float(delay))
if gate:
    hold_until(pytest.MonkeyPatch(), gate)
corpus = Dataset.from_dict({"text": open(texts_file).read().splitlines()})
generator = TeacherEmbeddingsGenerator(teacher, device="cpu", batch_size=8, chunk_size=8)
started = time.monotonic()
try:
    generator.generate(corpus, output_dir=out)
finally:
    print(f"generate() took {time.monotonic() - started:.2f} s", flush=True)
"""


def _generate_process(tmp_path, teacher, corpus, delay, gate=""):
    script = tmp_path / "generate.py"
    script.write_text(GENERATE_WORKER)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(corpus["text"]) + "\n")
    command = [
        sys.executable,
        str(script),
        teacher,
        str(texts),
        str(tmp_path / "out"),
        delay,
        str(gate),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_manifest(folder: Path, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (folder / "manifest.json").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first run never wrote its manifest"
        time.sleep(0.05)


def _generate_here(tmp_path, teacher):
    """The worker's ``generate``, in this process, on the texts the worker was given."""
    texts = (tmp_path / "texts.txt").read_text().splitlines()
    generator = TeacherEmbeddingsGenerator(teacher, device="cpu", batch_size=8, chunk_size=8)
    return generator.generate(Dataset.from_dict({"text": texts}), output_dir=tmp_path / "out")


@pytest.mark.slow
def test_a_second_generate_on_the_same_output_dir_is_refused_at_once(
    tmp_path, corpus, teacher_dense
):
    go = tmp_path / "go"  # the first run waits before each shard until the second was refused
    first = _generate_process(tmp_path, teacher_dense, corpus, delay="0", gate=go)
    try:
        _wait_for_manifest(tmp_path / "out", first)
        started = time.monotonic()  # the second run: this process
        with pytest.raises(FolderInUseError) as refused:
            _generate_here(tmp_path, teacher_dense)
        took = time.monotonic() - started
        message = " ".join(f"{type(refused.value).__name__}: {refused.value}".split())
        assert (
            f"FolderInUseError: {tmp_path / 'out'} is being written by another process "
            f"(pid {first.pid} on {socket.gethostname()}, started "
        ) in message
        assert f"stop it (kill {first.pid}), then run the same command again" in message
        assert took < 1.0  # the folder is claimed before the teacher loads
        assert first.poll() is None  # the first run goes on, untouched
        go.touch()
        assert first.wait(timeout=300) == 0, first.communicate()
    finally:
        if first.poll() is None:
            first.kill()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_rows"] == 50


@pytest.mark.slow
def test_an_output_dir_left_by_a_killed_generate_resumes(tmp_path, corpus, teacher_dense):
    first = _generate_process(tmp_path, teacher_dense, corpus, delay="0.5")
    _wait_for_manifest(tmp_path / "out", first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    _generate_here(tmp_path, teacher_dense)  # the rerun, in this process
    assert ShardStore(tmp_path / "out").load()["row_id"] == list(range(50))
