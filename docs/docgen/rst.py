"""The reStructuredText of the package's docstrings, as Markdown.

The docstrings are Google style with Sphinx markup in the text: ``literals`` (already code in
Markdown), roles such as :func:`~embedding_distillation.export.load_encoder`, and ``::`` before
a literal block. :class:`RstToMarkdown` is a griffe extension (``mkdocs.yml`` loads it for
mkdocstrings) that rewrites a role as a code span of the name it shows, and ``::`` as ``:``.
This file imports nothing from docgen: griffe loads it by path.
"""

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]+?)(?:\s*<[^>]+>)?`")
LITERAL_BLOCK = re.compile(r"(?<=\S)::(?=\n\n)")


def _shown(match: re.Match[str]) -> str:
    """The name a role shows: the last part with ``~``, else the whole (leading dots dropped)."""
    target = match.group(2).strip().lstrip(".")
    return target.rsplit(".", 1)[-1] if match.group(1) else target


def roles_to_code(text: str) -> str:
    """``:func:`~a.b.c``` -> ```c``` and ``x::`` before a literal block -> ``x:``."""
    text = ROLE.sub(lambda m: f"``{_shown(m)}``", text)
    return LITERAL_BLOCK.sub(":", text)


def rst_to_markdown(text: str) -> str:
    """A docstring's text for a Markdown table cell: roles and ````literals```` as code spans."""
    return re.sub(r"``(.+?)``", r"`\1`", roles_to_code(text))


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring's Sphinx roles before mkdocstrings parses it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the docstring of each object as it is created."""
        if obj.docstring is not None:
            obj.docstring.value = roles_to_code(obj.docstring.value)
