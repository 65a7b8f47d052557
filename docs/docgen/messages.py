"""The troubleshooting page quotes the project's error messages: check that the code still has them.

A quoted message is a blockquote line that holds only a code span::

    > `compute.device is 'cuda' but torch sees no CUDA device (torch …). Use device 'auto' …`

where ``…`` stands for what the code fills in (a value, a path, the rest of the message). The
quote is found when one string literal of ``src/`` (an f-string counts as one literal, its
``{...}`` parts as anything; implicitly joined literals are one literal) holds the quoted
pieces in that order.
"""

import ast
import functools
import re
from pathlib import Path

from docgen.project import PACKAGE, SRC

ELLIPSIS = "…"
QUOTE = re.compile(r"^> (`+) ?(.+?) ?\1[ \t]*$", re.MULTILINE)


def quoted_messages(markdown: str) -> list[str]:
    """The messages a page quotes, in page order."""
    return [match.group(2) for match in QUOTE.finditer(markdown)]


def _literal(node: ast.AST) -> str | None:
    """A string literal's text, with each ``{...}`` of an f-string as :data:`ELLIPSIS`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else ELLIPSIS
            for v in node.values
        ]
        return "".join(parts)
    return None


@functools.cache
def string_literals(src: Path = SRC) -> tuple[str, ...]:
    """Every string literal of the package's sources (read once per build)."""
    found: list[str] = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr):
                found.append(_literal(node) or "")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
    return tuple(found)


def pieces(message: str) -> list[str]:
    """The fixed parts of a quoted message, in order (``…`` separates them)."""
    return [re.sub(r"\s+", " ", piece) for piece in message.split(ELLIPSIS) if piece]


def holds(text: str, parts: list[str]) -> bool:
    """Whether ``text`` holds ``parts`` in that order (each leftmost: linear, no backtracking)."""
    position = 0
    for part in parts:
        found = text.find(part, position)
        if found < 0:
            return False
        position = found + len(part)
    return True


def missing_messages(markdown: str, src: Path = SRC) -> list[str]:
    """The messages quoted in ``markdown`` that no string literal of ``src`` holds."""
    literals = string_literals(src)
    return [
        message
        for message in quoted_messages(markdown)
        if not any(holds(text, pieces(message)) for text in literals)
    ]
