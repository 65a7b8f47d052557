"""Spies on :class:`EncodingJob.encode_shard`: which shards a run encodes, and a crash in one."""

import pytest

from embedding_distillation.encoding.engine import EncodingJob


class Crash(Exception):
    """Stands for a process killed while it encodes a shard."""


def crash_at(
    monkeypatch: pytest.MonkeyPatch, job: EncodingJob, index: int, error: type = Crash
) -> None:
    """Make ``job`` raise ``error`` when it starts encoding shard ``index``."""
    original = job.encode_shard

    def encode(shard):
        if shard.index == index:
            raise error()
        return original(shard)

    monkeypatch.setattr(job, "encode_shard", encode)


def record_encoded(monkeypatch: pytest.MonkeyPatch, job: EncodingJob) -> list[int]:
    """The indices of the shards ``job`` encodes from now on, in order."""
    encoded: list[int] = []
    original = job.encode_shard
    monkeypatch.setattr(job, "encode_shard", lambda s: encoded.append(s.index) or original(s))
    return encoded
