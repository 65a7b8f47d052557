"""Where the project's files are, and the package as griffe sees it (without importing it)."""

import functools
from pathlib import Path

import griffe

from docgen.rst import RstToMarkdown

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "embedding_distillation"
CONF = ROOT / "conf"
BASE = CONF / "base"
BENCHMARKS = ROOT / "benchmarks"


@functools.cache
def package() -> griffe.Module:
    """The ``embedding_distillation`` package, loaded statically from ``src/``."""
    return griffe.load(
        PACKAGE,
        search_paths=[str(SRC)],
        docstring_parser="google",
        extensions=griffe.load_extensions(RstToMarkdown),
    )


def member(path: str) -> griffe.Object | griffe.Alias:
    """The object at ``path`` relative to the package (``"compute.ComputeConfig"``)."""
    return package()[path]


def one_line(text: str) -> str:
    """``text`` with its line breaks turned into spaces (for a table cell)."""
    return " ".join(text.split())
