"""Tests for embedding_distillation.demo.wikitext: MediaWiki markup and dump sentences."""

import pytest

from embedding_distillation.demo import wikitext as wt
from tests.demo.conftest import WIKI_ARTICLE, wiki_dump


def test_strip_removes_nested_templates():
    text = "Before {{Infobox|name={{nowrap|{{lang|fr|x}} y}}|size=3}} after."
    assert wt.strip_wiki_markup(text) == "Before after."


def test_strip_keeps_convert_and_lang_template_text():
    text = "Paris ({{lang-fr|Paris}}) covers {{convert|105|km2|sqmi|abbr=on}}; {{lang|de|Haus}}."
    assert wt.strip_wiki_markup(text) == "Paris (Paris) covers 105 km2; Haus."


def test_strip_links_keep_label_or_target():
    text = "A [[political philosophy|philosophy]] of [[anarchy]] and [[Pierre-Joseph Proudhon]]s."
    assert wt.strip_wiki_markup(text) == "A philosophy of anarchy and Pierre-Joseph Proudhons."


def test_strip_pipe_trick_and_interlanguage_links():
    assert wt.strip_wiki_markup("See [[Paris|]] now [[de:Paris]].") == "See Paris now."


def test_strip_removes_refs_including_self_closing_and_templates_inside():
    text = (
        'Fact.<ref name="a">{{cite web|url=http://x.org|title=T}} p. 3</ref> More<ref name=b /> x.'
    )
    assert wt.strip_wiki_markup(text) == "Fact. More x."


def test_strip_removes_tables_even_with_templates_inside():
    text = "Before.\n{| class=wikitable\n|-\n! A !! B\n|-\n| {{flag|FR}} || 2\n|}\nAfter."
    assert wt.strip_wiki_markup(text) == "Before.\n\nAfter."


def test_strip_removes_file_and_category_links_with_nested_links():
    text = "[[File:X.jpg|thumb|left|A [[caption]] with [[a|b]]]]Text stays.[[Category:Philosophy]]"
    assert wt.strip_wiki_markup(text) == "Text stays."
    assert wt.strip_wiki_markup("[[Image:Y.png|200px]]Z.") == "Z."


def test_strip_external_links_keep_label():
    text = "See [http://example.org/a?b=1 the site] and [https://example.org] now."
    assert wt.strip_wiki_markup(text) == "See the site and now."


def test_strip_bold_italic_headings_lists_entities_comments():
    text = (
        "== History ==\n"
        "'''Anarchism''' is ''a'' '''''political''''' idea.<!-- hidden -->\n"
        "* item one\n"
        "#: nested item\n"
        "AT&amp;T&nbsp;Corp &ndash; big.<br/>End"
    )
    assert wt.strip_wiki_markup(text) == (
        "History\nAnarchism is a political idea.\nitem one\nnested item\nAT&T Corp \u2013 big. End"
    )


def test_strip_cleans_parentheses_left_by_removed_templates():
    text = "Achilles ({{IPAc-en|a|k|l}};, Akhilleus,) was a hero. Ayn Rand ({{IPA|x}}) wrote."
    assert wt.strip_wiki_markup(text) == "Achilles (Akhilleus) was a hero. Ayn Rand wrote."


@pytest.mark.parametrize("namespace", ["http://www.mediawiki.org/xml/export-0.10/", None])
def test_wiki_sentences_on_tiny_dump(namespace, tmp_path):
    pages = [
        ("Cat", "0", WIKI_ARTICLE, False),
        ("Kitty", "0", "#REDIRECT [[Cat]] Some redirect words are here.", True),
        ("Wikipedia:About", "4", "Project pages are not articles at all.", False),
    ]
    data = wiki_dump(pages, namespace)
    expected = [
        "Cats are small carnivorous mammals that live with people.",
        "Mr. Smith owns three of them.",
        "Cats sleep for most of the day in warm places.",
    ]
    assert wt.wiki_sentences(data) == expected
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(data)
    assert wt.wiki_sentences(path) == expected
