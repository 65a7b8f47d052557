"""Sentences from plain text: splitting, the rules a corpus sentence must pass, deduplication."""

import re
from collections import Counter
from collections.abc import Callable, Iterable

MIN_WORDS = 5
MAX_WORDS = 80
LEFTOVER_MARKUP = ("{{", "}}", "[[", "]]", "{|", "|}", "|", "==", "''", "<", ">", "://")
# Characters around sentence edges: straight and curly quotes, brackets; Latin-1 capitals.
_OPENERS = re.escape("\"'\u201c\u2018([")
_CLOSERS = re.escape("\"'\u201d\u2019)]")
_CAPITALS = "A-Z\u00c0-\u00d6\u00d8-\u00de"
# A boundary: terminal punctuation, optional closing quotes/brackets, spaces, then (ahead) an
# optional opening quote/bracket and a capital letter.
_BOUNDARY = re.compile(rf"[.!?][{_CLOSERS}]*\s+(?=[{_OPENERS}]*[{_CAPITALS}])")
_SENTENCE_START = re.compile(rf"[{_OPENERS}]*[0-9{_CAPITALS}]")
_SENTENCE_END = re.compile(rf"[.!?][{_CLOSERS}]*$")
# Abbreviations after which a period does not end the sentence. Dotted initials and acronyms
# ("J.", "e.g.", "i.e.", "U.S.") are recognised by _INITIALS instead.
ABBREVIATIONS = frozenset(
    {
        "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "vs.", "cf.", "gen.",
        "gov.", "sen.", "rep.", "rev.", "col.", "lt.", "sgt.", "capt.", "mt.", "ft.",
        "inc.", "ltd.", "co.", "corp.", "fig.", "approx.",
    }
)  # fmt: skip
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+")


def split_sentences(text: str) -> list[str]:
    """Split text into sentences at ``.``, ``!`` or ``?`` followed by a space and a capital.

    A period after a known abbreviation (``Mr.``, ``Dr.``, ``St.``), a single initial
    (``J.``) or a dotted acronym (``e.g.``, ``i.e.``, ``U.S.``) does not end a sentence. Line
    breaks always do (paragraphs and headings are separate).

    Args:
        text: Plain text.

    Returns:
        The non-empty sentences, stripped, in order.
    """
    sentences = []
    for line in text.split("\n"):
        start = 0
        for match in _BOUNDARY.finditer(line):
            if line[match.start()] == "." and _is_abbreviation(line[start : match.start() + 1]):
                continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]


def _is_abbreviation(text_to_period: str) -> bool:
    """True when the last word of ``text_to_period`` (which ends with ".") is an abbreviation."""
    words = text_to_period.split()
    word = words[-1].lstrip("\"'\u201c\u2018([") if words else ""
    return word.lower() in ABBREVIATIONS or bool(_INITIALS.fullmatch(word))


# (rule, test that a sentence breaks it), in the order they are checked.
_SENTENCE_CHECKS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("too_short", lambda s: len(s.split()) < MIN_WORDS),
    ("too_long", lambda s: len(s.split()) > MAX_WORDS),
    ("unbalanced_parentheses", lambda s: s.count("(") != s.count(")")),
    ("no_letters", lambda s: not re.search(r"[A-Za-z]", s)),
    ("markup", lambda s: any(m in s for m in LEFTOVER_MARKUP)),
    ("no_sentence_start", lambda s: not _SENTENCE_START.match(s)),
    ("no_sentence_end", lambda s: not _SENTENCE_END.search(s)),
)
SENTENCE_RULES = tuple(rule for rule, _ in _SENTENCE_CHECKS)


def sentence_rejection(sentence: str) -> str | None:
    """The first rule of ``SENTENCE_RULES`` that a sentence breaks, or None for a clean one.

    A clean sentence has ``MIN_WORDS``..``MAX_WORDS`` words, balanced parentheses, letters, no
    leftover markup (``{{``, ``|``, ``==``...), starts like a sentence (a capital, digit or
    opening quote/bracket) and ends with ``.``, ``!`` or ``?`` (optionally followed by closing
    quotes/brackets).
    """
    return next((rule for rule, breaks in _SENTENCE_CHECKS if breaks(sentence)), None)


def is_clean_sentence(sentence: str) -> bool:
    """True for a sentence worth keeping in the corpus (``sentence_rejection`` finds nothing)."""
    return sentence_rejection(sentence) is None


def normalize_whitespace(text: str) -> str:
    """Strip a text and turn every run of whitespace inside it into one space."""
    return " ".join(text.split())


def clean_sentences(texts: Iterable[str], counts: Counter[str] | None = None) -> list[str]:
    """Split texts into sentences, keep the clean ones, drop exact duplicates, keep order.

    Runs of whitespace inside a sentence become one space before the duplicate check.

    Args:
        texts: Plain texts (paragraphs, documents).
        counts: When given, gains ``sentences`` (all sentences split off), one key per rule of
            ``SENTENCE_RULES`` (sentences that broke it first), ``duplicate`` and ``kept``.

    Returns:
        The clean sentences, each once, in order of first appearance.
    """
    tally: Counter[str] = Counter()
    kept: dict[str, None] = {}
    for text in texts:
        for raw in split_sentences(text):
            sentence = normalize_whitespace(raw)
            tally["sentences"] += 1
            if (rule := sentence_rejection(sentence)) is not None:
                tally[rule] += 1
            elif sentence in kept:
                tally["duplicate"] += 1
            else:
                kept[sentence] = None
    tally["kept"] = len(kept)
    if counts is not None:
        counts.update(tally)
    return list(kept)
