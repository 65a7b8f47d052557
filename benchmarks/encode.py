"""Side-by-side CPU benchmark of teacher-embedding generation.

Runs, in one invocation, on the same texts, teacher and thread count, each tool in its own
subprocess:

1. ours: ``embedding_distillation.TeacherEmbeddingsGenerator(...).generate(...)``;
2. plain sentence-transformers: ``SentenceTransformer.encode`` + ``Dataset.add_column`` +
   ``to_parquet`` (final embeddings only);
3. distil-trainer 0.1.27 in its own venv (``benchmarks/.work/venv-distil``, created if missing);
4. ours with ``embedding_dtype="float16"``;
5. ours with ``output_type="hidden_states"``;
6. kill -9 + resume of ours, compared bitwise with an uninterrupted run;
7. peak RSS of ours with a tiny teacher on a 10x larger synthetic corpus, memory-mapped and
   streamed (``streaming=True``).

It prints a Markdown table of absolute figures and ratios and writes it to
``benchmarks/RESULTS.md``. The same file is also the child process (``--child SPEC``), so the
top level imports only the standard library: the distil-trainer venv runs it too.

Usage::

    python benchmarks/encode.py [--rows N] [--threads T] [--teacher PATH] [--quick]
        [--final-only | --memory-only] [--results FILE]
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # the helpers every benchmark shares (stdlib only)
    BENCH_DIR,
    DEFAULT_CORPUS,
    DEFAULT_TEACHER,
    DISTIL_PYTHON,
    FINAL_COLUMN,
    ROOT,
    RUNS,
    WORK,
    ChildFailedError,
    bytes_on_disk,
    child_main,
    cpu_model,
    ensure_distil_venv,
    fmt,
    load_average,
    package_versions,
    peak_rss_mb,
    run_child,
    start_child,
)

OUTPUTS = WORK / "outputs"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
BATCH_SIZE = 32

# Targets from the issue: (ratio key, comparison, threshold).
TARGETS = {
    "throughput_vs_distil": (">=", 2.0),
    "throughput_vs_plain": (">=", 1.0),
    "bytes_distil_over_ours_fp32": (">=", 2.0),
    "bytes_distil_over_ours_fp16": (">=", 4.0),
    "rss_large_over_small": ("<=", 1.2),
    "rss_large_over_small_streaming": ("<=", 1.2),
    "throughput_bf16_vs_distil": None,  # reported, no target
    "throughput_bf16_vs_ours": None,
}


# --------------------------------------------------------------------------------------------
# Child side: one measured job per process. Heavy imports happen here, inside the functions.
# --------------------------------------------------------------------------------------------


def job_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our ``TeacherEmbeddingsGenerator`` on the corpus file, into a fresh shard folder."""
    from embedding_distillation.api import TeacherEmbeddingsGenerator

    baseline = peak_rss_mb()
    started = time.perf_counter()
    generator = TeacherEmbeddingsGenerator(
        spec["teacher"],
        device="cpu",
        batch_size=BATCH_SIZE,
        chunk_size=spec.get("chunk_size", 1000),
        embedding_dtype=spec.get("embedding_dtype", "float32"),
        use_bf16=spec.get("use_bf16", False),
    )
    dataset = generator.generate(
        spec["corpus"],
        text_column="text",
        output_type=spec["output_type"],
        output_dir=spec["output"],
        streaming=spec.get("streaming", False),
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": dataset.num_rows,
        "baseline_rss_mb": baseline,
        "versions": package_versions(["torch", "sentence-transformers", "datasets"]),
    }


def job_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain sentence-transformers: encode, add the column, write Parquet."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    baseline = peak_rss_mb()
    started = time.perf_counter()
    corpus = Dataset.from_parquet(spec["corpus"])
    model = SentenceTransformer(spec["teacher"], device="cpu")
    embeddings = model.encode(list(corpus["text"]), batch_size=BATCH_SIZE)
    corpus = corpus.add_column(FINAL_COLUMN, list(embeddings))  # list of float32 rows
    corpus.to_parquet(spec["output"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": corpus.num_rows,
        "baseline_rss_mb": baseline,
        "versions": package_versions(["torch", "sentence-transformers", "datasets"]),
    }


def job_distil(spec: dict[str, Any]) -> dict[str, Any]:
    """distil-trainer 0.1.27: its ``generate`` takes a Hub id or a ``Dataset``, not a file."""
    from datasets import Dataset
    from distil_trainer import TeacherEmbeddingsGenerator

    baseline = peak_rss_mb()
    started = time.perf_counter()
    corpus = Dataset.from_parquet(spec["corpus"])
    generator = TeacherEmbeddingsGenerator(
        teacher_model=spec["teacher"], batch_size=BATCH_SIZE, device="cpu"
    )
    dataset = generator.generate(
        source_dataset=corpus, text_column="text", output_type=spec["output_type"]
    )
    dataset.to_parquet(spec["output"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": dataset.num_rows,
        "baseline_rss_mb": baseline,
        "versions": package_versions(
            ["torch", "sentence-transformers", "datasets", "distil-trainer"]
        ),
    }


def job_build_tiny(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the tiny teacher and the synthetic corpora with the test-suite helpers."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT))
    from tests.conftest import build_model, make_sentences

    model_dir = build_model(Path(spec["folder"]), hidden=32, layers=2, seed=0)
    texts = make_sentences(max(spec["sizes"]), seed=11)
    for size, path in zip(spec["sizes"], spec["corpora"], strict=True):
        pq.write_table(pa.table({"text": texts[:size]}), path)
    return {"model": str(model_dir)}


CHILD_JOBS = {
    "ours": job_ours,
    "plain": job_plain,
    "distil": job_distil,
    "build_tiny": job_build_tiny,
}


# --------------------------------------------------------------------------------------------
# Parent side: orchestration, measurements on disk, checks and the report.
# --------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One row of the results table."""

    label: str
    rows: int | None = None
    seconds: float | None = None
    peak_rss_mb: float | None = None
    output_bytes: int | None = None
    cache_bytes: int | None = None
    stored: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def texts_per_second(self) -> float | None:
        """Rows divided by wall seconds."""
        if self.rows is None or not self.seconds:
            return None
        return self.rows / self.seconds


def cache_bytes(name: str) -> int:
    """Bytes a child left in its private ``HF_DATASETS_CACHE`` (Arrow copies of data)."""
    cache = RUNS / name / "hf-cache"
    return bytes_on_disk(cache) if cache.exists() else 0


def first_parquet_file(path: Path) -> Path:
    """The file itself, or the first shard of a shard folder."""
    if path.is_file():
        return path
    return sorted((path / "data").glob("*.parquet"))[0]


def stored_columns(path: Path) -> str:
    """Short description of the embedding columns stored at ``path``, e.g. ``final f32``."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(first_parquet_file(path))
    parts = []
    for column in schema:
        value_type = getattr(column.type, "value_type", None)
        if value_type is None:
            continue
        name = column.name.replace("teacher_embedding_", "").replace("hidden_state_layer_", "L")
        parts.append(f"{name} {short_type(value_type)}")
    if len(parts) > 4:
        return f"{len(parts)} columns ({parts[0]} ... {parts[-1]})"
    return " + ".join(parts)


def short_type(arrow_type: Any) -> str:
    """``float`` -> ``f32``, ``double`` -> ``f64``, ``halffloat`` -> ``f16``."""
    names = {"float": "f32", "double": "f64", "halffloat": "f16"}
    return names.get(str(arrow_type), str(arrow_type))


def measure(
    label: str,
    name: str,
    spec: dict[str, Any],
    threads: int,
    python: Path | str = sys.executable,
    note: str = "",
) -> Measurement:
    """Run one child job that writes ``spec['output']`` and turn it into a table row."""
    output = Path(spec["output"])
    shutil.rmtree(output, ignore_errors=True)
    output.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    result = run_child(name, spec, threads, python)
    return Measurement(
        label=label,
        rows=result["rows"],
        seconds=result["seconds"],
        peak_rss_mb=result["peak_rss_mb"],
        output_bytes=bytes_on_disk(output),
        cache_bytes=cache_bytes(name),
        stored=stored_columns(output),
        note=note,
        extra=result,
    )


def failed_measurement(label: str, error: Exception) -> Measurement:
    """A table row for a run that could not complete."""
    first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
    return Measurement(label=label, note=f"FAILED: {first_line}", extra={"error": str(error)})


# ---- inputs ---------------------------------------------------------------------------------


def prepare_corpus(rows: int) -> Path:
    """Write the first ``rows`` texts of the demo corpus (text column only) to a Parquet file."""
    import pyarrow.parquet as pq

    if not DEFAULT_CORPUS.exists():
        sys.exit(
            f"The demo corpus {DEFAULT_CORPUS} is missing. Fetch it first with:\n"
            "    python -m embedding_distillation.demo"
        )
    table = pq.read_table(DEFAULT_CORPUS, columns=["text"])
    if rows > table.num_rows:
        sys.exit(f"--rows {rows} is more than the {table.num_rows} rows of {DEFAULT_CORPUS}.")
    path = WORK / f"corpus-{rows}.parquet"
    pq.write_table(table.slice(0, rows), path)
    return path


def ensure_tiny_assets(sizes: list[int], threads: int) -> tuple[str, list[Path]]:
    """Build (once) the tiny teacher and the synthetic corpora of ``sizes`` rows."""
    folder = WORK / "tiny-teacher"
    corpora = [WORK / f"synthetic-{size}.parquet" for size in sizes]
    model_dir = folder / "model"
    if not (model_dir / "modules.json").exists() or not all(p.exists() for p in corpora):
        spec = {
            "job": "build_tiny",
            "folder": str(folder),
            "sizes": sizes,
            "corpora": [str(p) for p in corpora],
        }
        run_child("build-tiny", spec, threads)
    return str(model_dir), corpora


# ---- kill -9 and resume ---------------------------------------------------------------------


def manifest_state(folder: Path) -> tuple[int, bool]:
    """(shards listed, complete) of a shard folder; (0, False) while it has no manifest."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0, False
    return len(manifest.get("shards", [])), bool(manifest.get("complete"))


def start_and_kill(spec: dict[str, Any], threads: int, timeout: float = 1800) -> dict[str, Any]:
    """Start ours, SIGKILL it once the manifest lists a shard; report what was done by then."""
    folder = Path(spec["output"])
    print("  running resume-killed (SIGKILL after the first shard) ...", flush=True)
    process = start_child("resume-killed", spec, threads, sys.executable)
    started = time.perf_counter()
    while process.poll() is None and time.perf_counter() - started < timeout:
        shards, complete = manifest_state(folder)
        if shards >= 1 and not complete:
            process.send_signal(signal.SIGKILL)
            process.wait()
            seconds = time.perf_counter() - started
            print(f"    killed after {seconds:.1f} s with {shards} shard(s) listed", flush=True)
            return {"killed": True, "shards": shards, "seconds": seconds}
        time.sleep(0.1)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
    shards, complete = manifest_state(folder)
    return {"killed": False, "shards": shards, "complete": complete}


def load_shard_table(folder: Path) -> Any:
    """All shards of a folder in manifest order, as one Arrow table (row_id included)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = json.loads((folder / "manifest.json").read_text())
    return pa.concat_tables(pq.read_table(folder / shard["file"]) for shard in manifest["shards"])


def embedding_matrix(table: Any, column: str) -> Any:
    """A fixed-size-list column as a (rows, dim) numpy array."""
    import numpy as np

    values = table.column(column).combine_chunks()
    return np.asarray(values.flatten()).reshape(len(values), -1)


def compare_shard_folders(resumed: Path, reference: Path) -> dict[str, Any]:
    """Row order, texts and embeddings (bitwise) of two shard folders."""
    import numpy as np

    left, right = load_shard_table(resumed), load_shard_table(reference)
    same_rows = left.column("row_id").to_pylist() == right.column("row_id").to_pylist()
    same_texts = left.column("text").to_pylist() == right.column("text").to_pylist()
    same_embeddings = same_rows and left.column_names == right.column_names
    max_diff = float("nan")
    if same_embeddings:
        max_diff = 0.0
        for column in left.column_names:
            if column in ("row_id", "text"):
                continue
            a, b = embedding_matrix(left, column), embedding_matrix(right, column)
            if a.shape != b.shape:
                same_embeddings = False
                continue
            same_embeddings = same_embeddings and np.array_equal(a, b)
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0)
            max_diff = max(max_diff, float(diff))
    return {
        "passed": same_rows and same_texts and same_embeddings,
        "same_row_order": same_rows,
        "same_texts": same_texts,
        "embeddings_equal": same_embeddings,
        "max_abs_diff": max_diff,
        "rows": left.num_rows,
    }


def kill_and_resume(
    corpus: Path, teacher: str, rows: int, threads: int
) -> tuple[list[Measurement], dict[str, Any]]:
    """Kill ours mid-run, resume it, and compare with an uninterrupted run."""
    chunk_size = max(1, rows // 10)
    base = {
        "job": "ours",
        "teacher": teacher,
        "corpus": str(corpus),
        "output_type": "final",
        "chunk_size": chunk_size,
    }
    resumed_dir = OUTPUTS / "ours-resumed"
    shutil.rmtree(resumed_dir, ignore_errors=True)
    killed = start_and_kill({**base, "output": str(resumed_dir)}, threads)
    label = f"ours final, chunk {chunk_size}: killed + resumed"
    resumed = run_child("resume-finished", {**base, "output": str(resumed_dir)}, threads)
    reference = measure(
        f"ours final, chunk {chunk_size}: uninterrupted",
        "resume-reference",
        {**base, "output": str(OUTPUTS / "ours-uninterrupted")},
        threads,
    )
    killed_note = (
        f"SIGKILL at {killed['seconds']:.1f} s with {killed['shards']} shard(s) done; "
        "wall = the resumed run only"
        if killed["killed"]
        else "NOT interrupted: the run ended before a shard was seen"
    )
    resumed_row = Measurement(
        label=label,
        rows=rows,
        seconds=resumed["seconds"],
        peak_rss_mb=resumed["peak_rss_mb"],
        output_bytes=bytes_on_disk(resumed_dir),
        cache_bytes=cache_bytes("resume-finished"),
        stored=stored_columns(resumed_dir),
        note=killed_note,
    )
    check = compare_shard_folders(resumed_dir, OUTPUTS / "ours-uninterrupted")
    check["killed"] = killed["killed"]
    check["passed"] = check["passed"] and killed["killed"]
    return [reference, resumed_row], check


# ---- the benchmark --------------------------------------------------------------------------


@dataclass
class Report:
    """Everything the tables and RESULTS.md are made of."""

    measurements: dict[str, Measurement] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    distil_error: str | None = None
    memory_sizes: list[int] = field(default_factory=list)
    encode_runs: bool = True


def encode_runs(
    report: Report, corpus: Path, teacher: str, threads: int, *, hidden: bool = True
) -> None:
    """Runs 1-5: ours, plain, distil-trainer, ours float16, ours hidden states (if ``hidden``)."""
    ours = {"job": "ours", "teacher": teacher, "corpus": str(corpus), "output_type": "final"}
    report.measurements["ours"] = measure(
        "ours final (f32)", "ours-final", {**ours, "output": str(OUTPUTS / "ours-final")}, threads
    )
    plain = {**ours, "job": "plain", "output": str(OUTPUTS / "plain-final.parquet")}
    report.measurements["plain"] = measure(
        "plain sentence-transformers encode",
        "plain-final",
        plain,
        threads,
        note="final only (no pre_dense)",
    )
    report.measurements["distil"] = distil_run(report, corpus, teacher, threads)
    report.measurements["ours_fp16"] = measure(
        "ours final (f16)",
        "ours-final-fp16",
        {**ours, "embedding_dtype": "float16", "output": str(OUTPUTS / "ours-final-fp16")},
        threads,
    )
    bf16 = measure(
        "ours final (bf16 compute)",
        "ours-final-bf16",
        {**ours, "use_bf16": True, "output": str(OUTPUTS / "ours-final-bf16")},
        threads,
    )
    bf16.note = cosine_note(OUTPUTS / "ours-final-bf16", OUTPUTS / "ours-final")
    report.measurements["ours_bf16"] = bf16
    if not hidden:
        return
    report.measurements["ours_hidden"] = measure(
        "ours hidden_states (all layers)",
        "ours-hidden",
        {**ours, "output_type": "hidden_states", "output": str(OUTPUTS / "ours-hidden")},
        threads,
    )


def cosine_note(folder: Path, reference: Path) -> str:
    """Mean and minimum cosine of ``folder``'s final embeddings to ``reference``'s, row by row."""
    import numpy as np

    left, right = load_shard_table(folder), load_shard_table(reference)
    if left.column("row_id").to_pylist() != right.column("row_id").to_pylist():
        return "row order differs from the f32 run"
    a = embedding_matrix(left, FINAL_COLUMN).astype(np.float64)
    b = embedding_matrix(right, FINAL_COLUMN).astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return f"cosine to the f32 run: mean {cosine.mean():.6f}, min {cosine.min():.6f}"


def distil_run(report: Report, corpus: Path, teacher: str, threads: int) -> Measurement:
    """Run 3: distil-trainer in its own venv; a failure is recorded, not raised."""
    label = "distil-trainer 0.1.27 final"
    try:
        ensure_distil_venv()
        spec = {
            "job": "distil",
            "teacher": teacher,
            "corpus": str(corpus),
            "output_type": "final",
            "output": str(OUTPUTS / "distil-final.parquet"),
        }
        return measure(label, "distil-final", spec, threads, python=DISTIL_PYTHON)
    except (ChildFailedError, OSError) as error:
        report.distil_error = str(error)
        print(f"    distil-trainer failed: {error}", flush=True)
        return failed_measurement(label, error)


def memory_runs(report: Report, sizes: list[int], threads: int) -> None:
    """Run 7: ours with a tiny teacher on a small and a 10x larger synthetic corpus, memory-mapped
    and streamed (``streaming=True``: no Arrow cache copy of the corpus)."""
    model, corpora = ensure_tiny_assets(sizes, threads)
    report.memory_sizes = sizes
    for streaming in (False, True):
        keys = ("mem_small_stream", "mem_large_stream") if streaming else ("mem_small", "mem_large")
        for key, size, corpus in zip(keys, sizes, corpora, strict=True):
            name = f"tiny-{size}" + ("-stream" if streaming else "")
            spec = {
                "job": "ours",
                "teacher": model,
                "corpus": str(corpus),
                "output_type": "final",
                "output": str(OUTPUTS / name),
                "streaming": streaming,
            }
            label = f"ours, tiny teacher, {size:,} synthetic rows, " + (
                "streamed" if streaming else "memory-mapped"
            )
            row = measure(label, name, spec, threads)
            row.note = f"RSS after imports {row.extra['baseline_rss_mb']:.0f} MB"
            report.measurements[key] = row


def safe_ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or zero."""
    if not numerator or not denominator:
        return None
    return numerator / denominator


def ratios(report: Report) -> dict[str, float | None]:
    """The ratios the issue sets targets for."""
    m = report.measurements
    missing = failed_measurement("not run", RuntimeError("not run"))
    m = {
        key: m.get(key, missing)
        for key in (
            "ours",
            "plain",
            "distil",
            "ours_fp16",
            "ours_bf16",
            "mem_large",
            "mem_small",
            "mem_large_stream",
            "mem_small_stream",
        )
    }
    return {
        "throughput_vs_distil": safe_ratio(
            m["ours"].texts_per_second, m["distil"].texts_per_second
        ),
        "throughput_vs_plain": safe_ratio(m["ours"].texts_per_second, m["plain"].texts_per_second),
        "bytes_distil_over_ours_fp32": safe_ratio(m["distil"].output_bytes, m["ours"].output_bytes),
        "bytes_distil_over_ours_fp16": safe_ratio(
            m["distil"].output_bytes, m["ours_fp16"].output_bytes
        ),
        "rss_large_over_small": safe_ratio(m["mem_large"].peak_rss_mb, m["mem_small"].peak_rss_mb),
        "rss_large_over_small_streaming": safe_ratio(
            m["mem_large_stream"].peak_rss_mb, m["mem_small_stream"].peak_rss_mb
        ),
        "throughput_bf16_vs_distil": safe_ratio(
            m["ours_bf16"].texts_per_second, m["distil"].texts_per_second
        ),
        "throughput_bf16_vs_ours": safe_ratio(
            m["ours_bf16"].texts_per_second, m["ours"].texts_per_second
        ),
    }


RATIO_LABELS = {
    "throughput_vs_distil": "throughput ours / distil-trainer (final, f32)",
    "throughput_vs_plain": "throughput ours / plain encode (final, f32)",
    "bytes_distil_over_ours_fp32": "bytes distil-trainer / ours (ours f32)",
    "bytes_distil_over_ours_fp16": "bytes distil-trainer / ours (ours f16)",
    "rss_large_over_small": "peak RSS {large} / {small} rows (tiny teacher)",
    "rss_large_over_small_streaming": "peak RSS {large} / {small} rows, streamed (tiny teacher)",
    "throughput_bf16_vs_distil": "throughput ours bf16 / distil-trainer (its use_bf16 is "
    "CUDA-only: f32 on a CPU)",
    "throughput_bf16_vs_ours": "throughput ours bf16 / ours f32",
}


# ---- formatting -----------------------------------------------------------------------------


def measurements_table(report: Report) -> str:
    """Markdown table of the absolute figures."""
    lines = [
        "| run | stored embedding columns | rows | wall s | texts/s | peak RSS MB | bytes on disk "
        "| datasets cache bytes | note |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in report.measurements.values():
        size = "n/a" if row.output_bytes is None else f"{row.output_bytes:,}"
        cache = "n/a" if row.cache_bytes is None else f"{row.cache_bytes:,}"
        rows = "n/a" if row.rows is None else f"{row.rows:,}"
        lines.append(
            f"| {row.label} | {row.stored} | {rows} | {fmt(row.seconds)} | "
            f"{fmt(row.texts_per_second)} | {fmt(row.peak_rss_mb, 0)} | {size} | {cache} | "
            f"{row.note} |"
        )
    return "\n".join(lines)


def ratios_table(report: Report) -> str:
    """Markdown table of the ratios next to their targets."""
    lines = ["| ratio | value | target | met |", "|---|--:|--:|---|"]
    small, large = ([*report.memory_sizes, 0, 0])[:2]
    for key, value in ratios(report).items():
        if key.startswith("rss_") and not report.memory_sizes:
            continue  # --final-only: no memory runs
        if not key.startswith("rss_") and not report.encode_runs:
            continue  # --memory-only
        if TARGETS[key] is None:
            lines.append(f"| {RATIO_LABELS[key]} | {fmt(value, 2)} | none | |")
            continue
        comparison, threshold = TARGETS[key]
        if value is None:
            met = "n/a"
        elif comparison == ">=":
            met = "yes" if value >= threshold else "NO"
        else:
            met = "yes" if value <= threshold else "NO"
        label = RATIO_LABELS[key].format(small=f"{small:,}", large=f"{large:,}")
        lines.append(f"| {label} | {fmt(value, 2)} | {comparison} {threshold} | {met} |")
    return "\n".join(lines)


def identity_line(identity: dict[str, Any] | None) -> str:
    """``identity check: PASS/FAIL`` with the max abs difference."""
    if identity is None:
        return "identity check: NOT RUN"
    verdict = "PASS" if identity["passed"] else "FAIL"
    details = (
        f"killed mid-run: {identity['killed']}, same row_id order: {identity['same_row_order']}, "
        f"same texts: {identity['same_texts']}, embeddings bitwise equal: "
        f"{identity['embeddings_equal']}"
    )
    return (
        f"identity check: {verdict} (max abs difference {identity['max_abs_diff']:.3g}; {details})"
    )


def versions_text(report: Report) -> str:
    """Package versions reported by the ours, plain and distil-trainer children."""
    lines = []
    for key in ("ours", "plain", "distil"):
        row = report.measurements.get(key)
        if row and "versions" in row.extra:
            versions = ", ".join(f"{k} {v}" for k, v in row.extra["versions"].items())
            lines.append(f"- {row.label}: {versions}")
    return "\n".join(lines)


def results_markdown(report: Report, context: dict[str, str]) -> str:
    """Full RESULTS.md text."""
    distil = (
        f"\n**distil-trainer could not run:**\n\n```\n{report.distil_error}\n```\n"
        if report.distil_error
        else ""
    )
    return f"""# Encoding benchmark results

- command: `{context["command"]}`
- date: {context["date"]}
- CPU: {context["cpu"]} ({os.cpu_count()} logical cores), load average at start {context["load"]}
- threads: {context["threads"]} (`OMP_NUM_THREADS`, `MKL_NUM_THREADS`, `RAYON_NUM_THREADS`,
  `torch.set_num_threads`) in every child
- rows: {context["rows"]}
- teacher: {context["teacher"]}, batch size {BATCH_SIZE}, device cpu
- total runtime: {context["runtime"]}

Wall seconds run from just after the imports to the output written (model load, corpus read,
encoding and writing included); texts/s = rows / wall seconds. Peak RSS is `ru_maxrss` of the
child at the end. Bytes on disk: the Parquet file, or every file of our shard folder (shards +
manifest). Each run is a separate process with its own `HF_DATASETS_CACHE`; "datasets cache
bytes" is what the run left there (Arrow copies made by `Dataset.from_parquet`), not counted in
bytes on disk. "ours final (bf16 compute)" is `use_bf16=True` on the CPU (the teacher cast to
bfloat16; embeddings stored as float32, whose low 16 mantissa bits are then zero, hence its
smaller files); distil-trainer's `use_bf16` applies only on CUDA, so on a CPU it runs float32.

## Absolute figures

{measurements_table(report)}

## Ratios and targets

{ratios_table(report)}

{identity_line(report.identity)}
{distil}
## Versions

{versions_text(report)}

distil-trainer was called as
`TeacherEmbeddingsGenerator(teacher_model=TEACHER, batch_size=32, device="cpu")
.generate(source_dataset=Dataset.from_parquet(CORPUS), text_column="text", output_type="final")`
and its result saved with `to_parquet` (its `generate` passes a string to `load_dataset`, which
does not accept a local Parquet file path, so the corpus is given as a `Dataset`).
"""


# ---- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="texts to encode (default 2000)")
    parser.add_argument("--threads", type=int, default=2, help="threads per child (default 2)")
    parser.add_argument("--teacher", default=str(DEFAULT_TEACHER), help="teacher model folder")
    parser.add_argument(
        "--quick", action="store_true", help="200 rows and a 2,000/20,000-row memory check"
    )
    parser.add_argument(
        "--final-only",
        action="store_true",
        help="only the final-embedding runs (ours f32/f16, plain, distil-trainer): no hidden "
        "states, kill + resume or memory runs (for a second teacher)",
    )
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the peak-RSS runs (tiny teacher, memory-mapped and streamed corpus)",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS_FILE, help="results file (default RESULTS.md)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = 200 if args.quick else 2000
    return args


def run_benchmark(args: argparse.Namespace) -> None:
    """Run every measurement, print the tables and write RESULTS.md."""
    started = time.perf_counter()
    teacher = str(Path(args.teacher).resolve())
    context = {
        "command": shlex.join(["python", "benchmarks/encode.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "load": load_average(),
        "threads": str(args.threads),
        "rows": "synthetic corpora only (--memory-only)"
        if args.memory_only
        else f"{args.rows:,} texts of `data/01_raw/corpus/demo_corpus.parquet` (text column only)",
        "teacher": "a tiny one" if args.memory_only else f"`{os.path.relpath(teacher, ROOT)}`",
    }
    WORK.mkdir(parents=True, exist_ok=True)
    corpus = prepare_corpus(args.rows)
    print(f"Benchmark: {args.rows} rows, {args.threads} threads, teacher {teacher}")
    report = Report()
    if args.memory_only:
        report.encode_runs = False
        memory_runs(report, [2_000, 20_000] if args.quick else [20_000, 200_000], args.threads)
    else:
        encode_runs(report, corpus, teacher, args.threads, hidden=not args.final_only)
    if not args.final_only and not args.memory_only:
        print("  kill -9 + resume check ...", flush=True)
        resume_rows, report.identity = kill_and_resume(corpus, teacher, args.rows, args.threads)
        report.measurements["resume_reference"], report.measurements["resumed"] = resume_rows
        memory_runs(report, [2_000, 20_000] if args.quick else [20_000, 200_000], args.threads)
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    context["runtime"] = f"{int(minutes)} min {seconds:.0f} s"
    print()
    print(measurements_table(report))
    print()
    print(ratios_table(report))
    print()
    print(identity_line(report.identity))
    if report.distil_error:
        print(f"distil-trainer could not run: {report.distil_error}")
    print(f"\nTotal runtime {context['runtime']}; written to {args.results}")
    args.results.write_text(results_markdown(report, context))


def main() -> None:
    """Entry point: the parent benchmark, or one child job with ``--child``."""
    args = parse_args()
    if args.child:
        child_main(json.loads(args.child), CHILD_JOBS)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
