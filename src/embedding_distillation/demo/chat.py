"""Open-domain chat utterances from the chitchat dataset, and the rules a chat text must pass.

Chat messages are not sentences of prose: they start in lower case, often end without
punctuation and carry several sentences, so each message is kept whole (not split) and judged
by its own rules (``chat_rejection``) rather than ``sentence_rejection``.

``dataset.json`` maps a conversation id to ``{"messages": [[{"text", "sender",
"timestamp"}, ...], ...]}``: a list of turns, each a list of the messages one person sent in
a row. The chat client cut messages at 175 characters and sent the rest as the next message,
so a message of exactly that length is joined to the next message of its turn.
"""

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from embedding_distillation.demo.errors import AssetError
from embedding_distillation.demo.sentences import normalize_whitespace

CHAT_MESSAGE_LIMIT = 175
MIN_CHAT_WORDS = 5
MAX_CHAT_WORDS = 80
MAX_TOKEN_CHARS = 40
_LETTER = re.compile(r"[A-Za-z]")
_URL = re.compile(r"://|\bwww\.|\b[\w-]+\.(?:com|org|net|edu|gov|io)\b", re.I)
_MARKUP = re.compile(r"[<>{}\[\]|\\]")
# (rule, test that a whitespace-normalised text breaks it), in the order they are checked.
_CHAT_CHECKS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("too_short", lambda t: len(t.split()) < MIN_CHAT_WORDS),
    ("too_long", lambda t: len(t.split()) > MAX_CHAT_WORDS),
    ("no_letters", lambda t: not _LETTER.search(t)),
    ("url", lambda t: bool(_URL.search(t))),
    ("markup", lambda t: bool(_MARKUP.search(t))),
    ("long_token", lambda t: any(len(word) > MAX_TOKEN_CHARS for word in t.split())),
)
CHAT_RULES = tuple(rule for rule, _ in _CHAT_CHECKS)


def chat_rejection(text: str) -> str | None:
    r"""The first rule of ``CHAT_RULES`` that a (whitespace-normalised) chat text breaks, or None.

    A kept chat text has ``MIN_CHAT_WORDS``..``MAX_CHAT_WORDS`` words, at least one letter, no
    URL or bare web address, none of ``< > { } [ ] | \`` (markup, and emoticons such as
    ``>:(``), and no token longer than ``MAX_TOKEN_CHARS`` characters (key mashing, long runs
    of punctuation).
    """
    return next((rule for rule, breaks in _CHAT_CHECKS if breaks(text)), None)


def chat_turns(dataset: dict[str, object]) -> Iterator[list[str]]:
    """Yield the message texts of each turn of each conversation, in file order.

    Args:
        dataset: The parsed ``dataset.json``.

    Raises:
        AssetError: A conversation does not have the ``messages`` layout described above.
    """
    for conversation_id, conversation in dataset.items():
        try:
            turns = conversation["messages"]  # type: ignore[index]
            for turn in turns:
                yield [str(message["text"]) for message in turn]
        except (KeyError, TypeError) as e:
            raise AssetError(
                f"conversation {conversation_id} of the chitchat dataset has no "
                '"messages": [[{"text": ...}]] layout; the file is not the chitchat dataset '
                "this module expects."
            ) from e


def join_split_messages(turn: list[str]) -> tuple[list[str], int]:
    """Join each message of exactly ``CHAT_MESSAGE_LIMIT`` characters to the next of its turn.

    Args:
        turn: The texts one person sent in a row.

    Returns:
        The texts, with cut messages rejoined (with a space), and the number of joins made.
    """
    texts: list[str] = []
    joins = 0
    current: str | None = None
    for text in turn:
        if current is None:
            current = text
        else:
            current = f"{current} {text}"
            joins += 1
        if len(text) != CHAT_MESSAGE_LIMIT:
            texts.append(current)
            current = None
    if current is not None:
        texts.append(current)
    return texts, joins


def clean_chat_texts(turns: Iterable[list[str]], counts: Counter[str] | None = None) -> list[str]:
    """Rejoin cut messages, normalise whitespace, apply ``chat_rejection``, drop duplicates.

    Args:
        turns: Message texts per turn (``chat_turns``).
        counts: When given, gains ``messages`` (messages read), ``joined`` (cut messages
            joined to their continuation), ``texts`` (texts after joining), one key per rule of
            ``CHAT_RULES`` (texts that broke it first), ``duplicate`` and ``kept``.

    Returns:
        The kept texts, each once, in order of first appearance.
    """
    tally: Counter[str] = Counter()
    kept: dict[str, None] = {}
    for turn in turns:
        tally["messages"] += len(turn)
        texts, joins = join_split_messages(turn)
        tally["joined"] += joins
        for raw in texts:
            text = normalize_whitespace(raw)
            tally["texts"] += 1
            if (rule := chat_rejection(text)) is not None:
                tally[rule] += 1
            elif text in kept:
                tally["duplicate"] += 1
            else:
                kept[text] = None
    tally["kept"] = len(kept)
    if counts is not None:
        counts.update(tally)
    return list(kept)


def chat_texts(dataset_json: bytes, counts: Counter[str] | None = None) -> list[str]:
    """The clean, unique chat texts of a chitchat ``dataset.json``.

    Args:
        dataset_json: The file's bytes (UTF-8 JSON).
        counts: As for ``clean_chat_texts``.

    Raises:
        AssetError: The file is not JSON, or not in the chitchat layout.
    """
    try:
        dataset = json.loads(dataset_json)
    except ValueError as e:
        raise AssetError(f"the chitchat dataset.json is not valid JSON ({e}).") from e
    if not isinstance(dataset, dict):
        raise AssetError(
            f"the chitchat dataset.json holds a {type(dataset).__name__}, expected an object "
            "mapping conversation ids to conversations."
        )
    return clean_chat_texts(chat_turns(dataset), counts)
