"""The errors the demo assets raise, and the fixes their messages end with."""

from pathlib import Path

RERUN_COMMAND = "python -m embedding_distillation.demo"


class AssetError(RuntimeError):
    """A demo asset could not be fetched, built or verified."""


class ChecksumError(AssetError):
    """A file's sha256 differs from the pinned value."""


def delete_and_rerun(output: Path) -> str:
    """The fix for an output on disk that is corrupt or incomplete."""
    return f"The asset is corrupt or incomplete: delete {output} and rerun `{RERUN_COMMAND}`."


def fresh_mismatch(source: str) -> str:
    """The fix for freshly downloaded files that differ from their pins."""
    return (
        f"The files downloaded from {source} differ from the pinned ones: rerun "
        f"`{RERUN_COMMAND}`; if it persists, the package changed on PyPI."
    )
