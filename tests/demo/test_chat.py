"""Tests for embedding_distillation.demo.chat: chat messages and their cleaning rules."""

from collections import Counter

import pytest

from embedding_distillation.demo import chat
from embedding_distillation.demo.errors import AssetError
from tests.demo.conftest import CHAT_CONVERSATIONS, chat_json


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("im doing good, just took a nap", None),
        ("how are you doing?", "too_short"),
        (" ".join(["word"] * 81), "too_long"),
        ("1 2 3 4 5 6", "no_letters"),
        ("see my site at http://example.org today", "url"),
        ("go to www.example.org for the rules", "url"),
        ("its on youtube.com if you want it", "url"),
        ("what are you gonna do one day>", "markup"),
        ("i love the <b>bold</b> text", "markup"),
        ("that is [so and so] speaking now", "markup"),
        ("a " + "h" * 41 + " that was so funny", "long_token"),
        ("a " + "h" * 40 + " that was so funny", None),
        ("It's a lovely day, isn't it? I think so.", None),
    ],
)
def test_chat_rejection(text, rule):
    assert chat.chat_rejection(text) == rule
    assert rule is None or rule in chat.CHAT_RULES


def _message(length: int, word: str = "word") -> str:
    text = " ".join([word] * (length // (len(word) + 1) + 1))
    return text[:length]


def test_join_split_messages_rejoins_cut_messages_of_the_limit_length():
    cut, cut2 = _message(175), _message(175, "more")
    assert len(cut) == len(cut2) == chat.CHAT_MESSAGE_LIMIT
    assert chat.join_split_messages([cut, "rest of it", "next one"]) == (
        [f"{cut} rest of it", "next one"],
        1,
    )
    assert chat.join_split_messages([cut, cut2, "end"]) == ([f"{cut} {cut2} end"], 2)
    assert chat.join_split_messages(["first", cut]) == (["first", cut], 0)  # nothing follows
    short = _message(174)
    assert chat.join_split_messages([short, "next"]) == ([short, "next"], 0)


def test_clean_chat_texts_counts_every_step():
    counts: Counter[str] = Counter()
    turns = [
        ["hello there", "how are  you doing today my friend?"],
        [_message(175), "and the rest of the message"],
        ["how are you doing today my friend?"],
        ["check out this link http://example.org right now"],
    ]
    texts = chat.clean_chat_texts(turns, counts)
    assert texts == [
        "how are you doing today my friend?",
        " ".join(_message(175).split()) + " and the rest of the message",
    ]
    assert counts == Counter(messages=6, joined=1, texts=5, too_short=1, url=1, duplicate=1, kept=2)


def test_chat_texts_reads_the_dataset_layout():
    counts: Counter[str] = Counter()
    texts = chat.chat_texts(chat_json(CHAT_CONVERSATIONS), counts)
    assert texts == [
        "how are you doing today my friend?",
        "im doing good, just took a nap",
        "Qantas froze the wages of its staff.",
        "a man plays the GUITAR.",
        "it has four strings tuned in FIFTHS.",  # left out by the large corpus, not here
    ]
    assert counts["messages"] == 12
    assert counts["too_short"] == 2  # "hello", "what are your goals?"
    assert counts["long_token"] == 1
    assert counts["markup"] == 1
    assert counts["url"] == 1
    assert counts["no_letters"] == 1
    assert counts["duplicate"] == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", r"chitchat dataset\.json is not valid JSON"),
        (b"[1, 2]", r"holds a list, expected an object mapping conversation ids"),
        (b'{"c1": {"start": "x"}}', r"conversation c1 of the chitchat dataset has no \"messages\""),
        (b'{"c1": {"messages": [[{"sender": "s"}]]}}', r"conversation c1 .* layout"),
    ],
)
def test_chat_texts_rejects_other_layouts(data, message):
    with pytest.raises(AssetError, match=message):
        chat.chat_texts(data)
