"""Tests for embedding_distillation.demo.sentences: splitting and the sentence rules."""

from collections import Counter

import pytest

from embedding_distillation.demo import sentences as st


def test_split_sentences_respects_abbreviations_and_initials():
    text = (
        "Mr. Smith met Dr. Jones in St. Louis. They spoke of e.g. Paris and i.e. Rome. "
        "The U.S. Army and J. R. R. Tolkien agreed. Did it work? Yes! It did."
    )
    assert st.split_sentences(text) == [
        "Mr. Smith met Dr. Jones in St. Louis.",
        "They spoke of e.g. Paris and i.e. Rome.",
        "The U.S. Army and J. R. R. Tolkien agreed.",
        "Did it work?",
        "Yes!",
        "It did.",
    ]


def test_split_sentences_quotes_lowercase_and_lines():
    text = 'He said "Stop." Then he left. It cost 3.5 dollars. see below.\nNew line here'
    assert st.split_sentences(text) == [
        'He said "Stop."',
        "Then he left.",
        "It cost 3.5 dollars. see below.",
        "New line here",
    ]


@pytest.mark.parametrize(
    ("sentence", "keep"),
    [
        ("The cat sat on the mat.", True),
        ('"The cat sat on the mat," he said.', True),
        ("Too short here.", False),
        ("The cat sat on the mat", False),  # no terminal punctuation
        ("the cat sat on the mat.", False),  # lowercase start
        ("The cat {{sat}} on the mat.", False),
        ("The cat sat | on the mat.", False),
        ("The cat == sat on the mat.", False),
        ("The cat sat (on the mat.", False),
        ("See http://x.org for the cat.", False),
        (" ".join(["word"] * 81) + ".", False),
        ("1 2 3 4 5.", False),  # no letters
    ],
)
def test_is_clean_sentence(sentence, keep):
    assert st.is_clean_sentence(sentence) is keep


def test_clean_sentences_dedupes_keeps_order_and_normalizes_spaces():
    texts = [
        "Alpha beta gamma delta epsilon.  Zeta eta theta iota kappa.",
        "Alpha beta gamma  delta epsilon.",
    ]
    assert st.clean_sentences(texts) == [
        "Alpha beta gamma delta epsilon.",
        "Zeta eta theta iota kappa.",
    ]


@pytest.mark.parametrize(
    ("sentence", "rule"),
    [
        ("The cat sat on the mat.", None),
        ("Too short here.", "too_short"),
        (" ".join(["Word"] * 81) + ".", "too_long"),
        ("The cat sat (on the mat.", "unbalanced_parentheses"),
        ("1 2 3 4 5.", "no_letters"),
        ("The cat {{sat}} on the mat.", "markup"),
        ("the cat sat on the mat.", "no_sentence_start"),
        ("The cat sat on the mat", "no_sentence_end"),
        ("the cat {{sat}} on the mat", "markup"),  # the first rule broken is the one named
    ],
)
def test_sentence_rejection_names_the_first_rule_broken(sentence, rule):
    assert st.sentence_rejection(sentence) == rule
    assert rule is None or rule in st.SENTENCE_RULES


def test_clean_sentences_counts_each_rule_duplicates_and_kept():
    counts: Counter[str] = Counter()
    texts = [
        "Alpha beta gamma delta epsilon. Too short here. The cat sat on the mat\n"
        "the lowercase start is here now.",
        "Alpha beta gamma delta epsilon. Zeta eta theta iota kappa.",
    ]
    assert st.clean_sentences(texts, counts) == [
        "Alpha beta gamma delta epsilon.",
        "Zeta eta theta iota kappa.",
    ]
    assert counts == Counter(
        sentences=6, too_short=1, no_sentence_end=1, no_sentence_start=1, duplicate=1, kept=2
    )


def test_normalize_whitespace():
    assert st.normalize_whitespace("  a\tb \n\n c  ") == "a b c"
