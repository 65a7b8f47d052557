"""MediaWiki source to plain text, and the clean sentences of a bz2 XML dump."""

import bz2
import html
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO
from xml.etree import ElementTree

from embedding_distillation.demo.sentences import clean_sentences

_COMMENT = re.compile(r"<!--.*?-->", re.S)
# Elements whose content is not prose: drop them whole.
_DROPPED_ELEMENT = re.compile(
    r"<(ref|math|chem|gallery|timeline|syntaxhighlight|source|score|imagemap|graph)\b[^>]*?"
    r"(?<!/)>.*?</\1\s*>",
    re.S | re.I,
)
_SELF_CLOSING_REF = re.compile(r"<ref\b[^>]*/>", re.I)
_BREAK = re.compile(r"<br\s*/?>", re.I)
_ANY_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
# The few templates that render prose: {{convert|5|km|...}} -> "5 km", {{lang|fr|mot}} and
# {{lang-fr|mot}} -> "mot". Every other template is removed.
_CONVERT_TEMPLATE = re.compile(r"\{\{\s*convert\s*\|([^|{}]+)\|([^|{}]+)[^{}]*\}\}", re.I)
_LANG_TEMPLATE = re.compile(r"\{\{\s*lang(?:\|[^|{}]+|-[\w-]+)\|([^|{}]+)\}\}", re.I)
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")  # innermost only; applied until nothing changes
_TABLE = re.compile(r"^[ \t]*\{\|(?:(?!^[ \t]*\{\|).)*?^[ \t]*\|\}", re.S | re.M)  # innermost
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\[\]]+(?:\s+([^\[\]]*))?\]")
_WIKI_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")  # innermost only
_DROPPED_NAMESPACES = frozenset({"file", "image", "category", "media"})
_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(?:-[a-z]+)*")
_QUOTES = re.compile(r"'{2,}")
_HEADING = re.compile(r"^(=+)[ \t]*(.*?)[ \t]*\1[ \t]*$", re.M)
_LIST_MARKER = re.compile(r"^[ \t]*[*#:;]+[ \t]*", re.M)
_RULE_OR_MAGIC = re.compile(r"^-{4,}[ \t]*$|__[A-Z]+__", re.M)
_PAREN_OPEN_PUNCT = re.compile(r"\([ \t]*(?:[,;:][ \t]*)+")  # "(;, x)" -> "(x)" after templates
_PAREN_CLOSE_PUNCT = re.compile(r"(?:[ \t]*[,;:])+[ \t]*\)")
_EMPTY_PARENS = re.compile(r"\([ \t]*\)")
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([,.;:!?)])")
_SPACES = re.compile(r"[ \t\xa0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def strip_wiki_markup(text: str) -> str:
    """Turn MediaWiki source into plain text (paragraphs and headings on their own lines).

    Removes comments, ``<ref>`` and similar non-prose elements, other tags (keeping their text),
    templates ``{{...}}`` (nested too; ``convert`` and ``lang`` keep their text), tables
    ``{| ... |}``, file/image/category links, bold/italic quotes, list and indent markers.
    Keeps link labels (``[[a|b]]`` -> ``b``, ``[[a]]`` -> ``a``, ``[http://x b]`` -> ``b``) and
    heading text (``== H ==`` -> ``H``), and decodes HTML entities. Small and regex based:
    leftovers are filtered out at sentence level.

    Args:
        text: Wikitext, as found in a dump's ``<text>`` element.

    Returns:
        The plain text.
    """
    text = _COMMENT.sub("", text)
    text = _DROPPED_ELEMENT.sub("", text)
    text = _SELF_CLOSING_REF.sub("", text)
    text = _BREAK.sub(" ", text)
    text = _ANY_TAG.sub("", text)
    text = _remove_templates_and_tables(text)
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = _replace_until_stable(_WIKI_LINK, _link_text, text)
    text = _QUOTES.sub("", text)
    text = _HEADING.sub(r"\2", text)
    text = _LIST_MARKER.sub("", text)
    text = _RULE_OR_MAGIC.sub("", text)
    text = html.unescape(text)
    text = _PAREN_OPEN_PUNCT.sub("(", text)
    text = _PAREN_CLOSE_PUNCT.sub(")", text)
    text = _EMPTY_PARENS.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _remove_templates_and_tables(text: str) -> str:
    """Remove templates and tables, innermost first, since either may nest in the other."""
    text = _CONVERT_TEMPLATE.sub(r"\1 \2", text)
    text = _LANG_TEMPLATE.sub(r"\1", text)
    while True:
        reduced = _TABLE.sub("", _replace_until_stable(_TEMPLATE, "", text))
        if reduced == text:
            return text
        text = reduced


def _replace_until_stable(
    pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str], text: str
) -> str:
    """Apply ``pattern.sub(repl, ...)`` until the text stops changing (for nested markup)."""
    while True:
        reduced = pattern.sub(repl, text)
        if reduced == text:
            return text
        text = reduced


def _link_text(match: re.Match[str]) -> str:
    """The visible text of an internal link ``[[target|label]]``; "" for files and categories."""
    inner = match.group(1)
    target, pipe, _ = inner.partition("|")
    prefix, colon, _ = target.strip().lstrip(":").partition(":")
    if colon and prefix.strip().lower() in _DROPPED_NAMESPACES:
        return ""
    if pipe:
        label = inner.rsplit("|", 1)[1].strip()
        return label or target.strip()  # [[target|]] is the "pipe trick"
    if colon and _LANGUAGE_PREFIX.fullmatch(prefix.strip()):
        return ""  # interlanguage link such as [[de:Anarchismus]]
    return target.strip()


_TAIL_SECTION = re.compile(
    r"^==[ \t]*(?:References|Notes|See also|Further reading|External links|Bibliography|Sources"
    r"|Footnotes|Citations|Works cited)[ \t]*==[ \t]*$",
    re.M | re.I,
)


def wiki_articles(xml_bz2: Path | bytes | BinaryIO) -> Iterator[tuple[str, str]]:
    """Yield ``(title, wikitext)`` for each article of a bz2 MediaWiki XML dump.

    Streams with ``iterparse`` and matches tags by local name, so any export schema version
    (namespace) works. Skips redirects and pages outside the main namespace.

    Args:
        xml_bz2: The ``.xml.bz2`` dump: a path, its bytes, or a binary file object.
    """
    source = io.BytesIO(xml_bz2) if isinstance(xml_bz2, bytes) else xml_bz2
    with bz2.open(source, "rb") as stream:
        for _, element in ElementTree.iterparse(stream, events=("end",)):
            if _local_name(element.tag) != "page":
                continue
            fields = {_local_name(child.tag): child for child in element.iter()}
            namespace = _field_text(fields, "ns") or "0"
            text = _field_text(fields, "text")
            is_redirect = "redirect" in fields or text.lstrip().upper().startswith("#REDIRECT")
            if namespace == "0" and not is_redirect and text.strip():
                yield _field_text(fields, "title"), text
            element.clear()


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _field_text(fields: dict[str, ElementTree.Element], name: str) -> str:
    element = fields.get(name)
    return (element.text or "") if element is not None else ""


def wiki_sentences(xml_bz2: Path | bytes | BinaryIO) -> list[str]:
    """Clean sentences from the articles of a bz2 MediaWiki XML dump.

    Each article is cut before its reference sections (References, See also, External
    links...), stripped of markup with ``strip_wiki_markup`` and split with
    ``split_sentences``; only clean sentences are kept (``is_clean_sentence``), deduplicated.

    Args:
        xml_bz2: The ``.xml.bz2`` dump: a path, its bytes, or a binary file object.

    Returns:
        The sentences in article order.
    """
    return clean_sentences(
        strip_wiki_markup(_TAIL_SECTION.split(wikitext, maxsplit=1)[0])
        for _, wikitext in wiki_articles(xml_bz2)
    )
