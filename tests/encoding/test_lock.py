"""The writer lock of a shard folder: one process at a time, and none after it died."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from embedding_distillation.encoding import lock as lock_module
from embedding_distillation.encoding.lock import (
    OWNER_NAME,
    FolderInUseError,
    Owner,
    WriterLock,
    probe,
    read_owner,
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from embedding_distillation.encoding.lock import WriterLock
    lock = WriterLock.acquire(sys.argv[1])
    print("locked", flush=True)
    time.sleep(600)
    """
)


def test_acquire_records_the_holder_and_release_frees_the_folder(tmp_path):
    with WriterLock.acquire(tmp_path / "out") as lock:
        assert lock.held
        owner = read_owner(tmp_path / "out")
        assert (owner.pid, owner.host) == (os.getpid(), socket.gethostname())
    assert read_owner(tmp_path / "out") is None
    WriterLock.acquire(tmp_path / "out").release()  # free again


def test_a_second_writer_in_the_same_process_is_refused(tmp_path):
    with WriterLock.acquire(tmp_path):
        with pytest.raises(
            FolderInUseError,
            match=rf"is being written by another process \(pid {os.getpid()} on "
            rf"{socket.gethostname()}, started .*\)\. Wait for it to finish, or stop it "
            rf"\(kill {os.getpid()}\), then run the same command again",
        ):
            WriterLock.acquire(tmp_path)
        assert probe(tmp_path) is not None
    assert probe(tmp_path) is None


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of ``tmp_path / 'out'``."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "out")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_live_process_blocks_the_folder_and_is_named_at_once(tmp_path, holder):
    started = time.monotonic()
    with pytest.raises(FolderInUseError, match=rf"\(pid {holder.pid} on {socket.gethostname()}"):
        WriterLock.acquire(tmp_path / "out")
    assert time.monotonic() - started < 1  # no waiting


def test_a_lock_left_by_a_killed_process_does_not_block_the_rerun(tmp_path, holder, caplog):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert read_owner(tmp_path / "out").pid == holder.pid  # the dead run's record is still there
    with caplog.at_level("INFO"), WriterLock.acquire(tmp_path / "out"):
        assert read_owner(tmp_path / "out").pid == os.getpid()
    assert f"from a run that stopped (pid {holder.pid} on" in caplog.text


def _record(folder, *, host, age):
    folder.mkdir(exist_ok=True)
    owner = Owner(4242, host, "2026-12-01T10:00:00+00:00", time.time() - age)
    (folder / OWNER_NAME).write_text(json.dumps(owner.__dict__))


def test_another_hosts_fresh_heartbeat_blocks_and_a_stale_one_does_not(tmp_path):
    _record(tmp_path, host="gpu-node-7", age=20)
    with pytest.raises(
        FolderInUseError,
        match=r"\(pid 4242 on gpu-node-7, started 2026-12-01T10:00:00\+00:00\)\. Its last "
        r"heartbeat was 20 s ago \(a run that stops beating for 300 s is taken over\)\. Wait "
        r"for it to finish, or stop it on gpu-node-7 \(kill 4242\)",
    ):
        WriterLock.acquire(tmp_path)
    _record(tmp_path, host="gpu-node-7", age=lock_module.STALE_AFTER_S + 1)
    with WriterLock.acquire(tmp_path):
        assert read_owner(tmp_path).host == socket.gethostname()


def test_the_heartbeat_refreshes_the_record(tmp_path):
    with WriterLock.acquire(tmp_path, heartbeat_s=0.05):
        first = read_owner(tmp_path).heartbeat
        time.sleep(0.3)
        assert read_owner(tmp_path).heartbeat > first


def test_the_lock_follows_a_renamed_folder(tmp_path):
    lock = WriterLock.acquire(tmp_path / "a")
    os.replace(tmp_path / "a", tmp_path / "b")
    lock.moved_to(tmp_path / "b")
    with pytest.raises(FolderInUseError):
        WriterLock.acquire(tmp_path / "b")  # the descriptor kept the lock across the rename
    lock.release()
    assert read_owner(tmp_path / "b") is None
