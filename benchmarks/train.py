"""Side-by-side CPU benchmark of one training epoch on precomputed teacher embeddings.

Runs, on the same precomputed targets, the same student and the same thread count, each tool
in its own subprocess:

1. ours: ``embedding_distillation.EmbeddingDistillationTrainer(...).train(parquet)``;
2. plain sentence-transformers: ``SentenceTransformerTrainer`` + ``losses.MSELoss``;
3. distil-trainer 0.1.27's ``EmbeddingDistillationTrainer.train`` in its own venv
   (``benchmarks/.work/venv-distil``, created by ``harness.py``'s helper if missing).

Each reports training seconds, samples/s, peak RSS and the mean cosine to the teacher of the
trained student on 300 held-out texts. The script prints a Markdown table and writes it to
``benchmarks/RESULTS_train.md``. The same file is also the child process (``--child SPEC``),
so the top level imports only the standard library (and ``harness.py``'s stdlib helpers).

Usage::

    python benchmarks/train.py [--rows N] [--threads T]
"""

import argparse
import datetime
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # stdlib-only helpers shared by the benchmarks

ROOT = harness.ROOT
WORK = harness.WORK
RUNS = WORK / "runs-train"
RESULTS_FILE = harness.BENCH_DIR / "RESULTS_train.md"
CORPUS = harness.DEFAULT_CORPUS
TEACHER = harness.DEFAULT_TEACHER
STUDENT_BASE = ROOT / "data" / "01_raw" / "models" / "all-MiniLM-L6-v2"
STUDENT_DIR = WORK / "student-dense"
HELD_OUT = 300
BATCH_SIZE = 32
LEARNING_RATE = 1e-4
TARGET = harness.FINAL_COLUMN
RESULT_PREFIX = harness.RESULT_PREFIX
SEED = 42


# --------------------------------------------------------------------------------------------
# Child side: heavy imports happen inside the functions.
# --------------------------------------------------------------------------------------------


def held_out_cosine(model: Any, held_out_path: str) -> float:
    """Mean cosine between the model's embeddings of the held-out texts and the targets."""
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(held_out_path)
    texts = table.column("text").to_pylist()
    targets = np.array(table.column(TARGET).to_pylist(), dtype=np.float32)
    model.eval()
    embeddings = np.asarray(
        model.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True), dtype=np.float32
    )
    dot = (embeddings * targets).sum(axis=1)
    norms = np.linalg.norm(embeddings, axis=1) * np.linalg.norm(targets, axis=1)
    return float((dot / np.maximum(norms, 1e-12)).mean())


def job_targets(spec: dict[str, Any]) -> dict[str, Any]:
    """Encode the first rows + held-out texts with our generator; export two Parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedding_distillation.api import TeacherEmbeddingsGenerator

    started = time.perf_counter()
    generator = TeacherEmbeddingsGenerator(spec["teacher"], device="cpu", batch_size=BATCH_SIZE)
    data = generator.generate(
        spec["corpus"],
        output_type="final",
        max_samples=spec["rows"] + HELD_OUT,
        output_dir=spec["shards"],
    )
    seconds = time.perf_counter() - started
    texts = list(data["text"])
    vectors = data.with_format("numpy")[TARGET]
    embedding_type = pa.list_(pa.float32())

    def write(start: int, stop: int, path: str) -> None:
        table = pa.table(
            {
                "text": pa.array(texts[start:stop], pa.string()),
                TARGET: pa.array(
                    [list(map(float, v)) for v in vectors[start:stop]], embedding_type
                ),
            }
        )
        pq.write_table(table, path)

    rows = spec["rows"]
    if len(texts) < rows + HELD_OUT:
        raise RuntimeError(f"only {len(texts)} rows encoded, need {rows + HELD_OUT}")
    write(0, rows, spec["train"])
    write(rows, rows + HELD_OUT, spec["held_out"])
    return {"seconds": seconds, "rows": len(texts)}


def job_student(spec: dict[str, Any]) -> dict[str, Any]:
    """MiniLM + Dense(384 -> 768, identity) + Normalize, saved once for all three tools."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize

    if not spec["reuse"]:
        torch.manual_seed(SEED)
        base = SentenceTransformer(spec["base"], device="cpu")
        modules = [m for m in base if not isinstance(m, Normalize)]
        dim = base.get_sentence_embedding_dimension()
        dense = Dense(dim, spec["target_dim"], activation_function=torch.nn.Identity())
        model = SentenceTransformer(modules=[*modules, dense, Normalize()], device="cpu")
        model.save(spec["output"])
    reloaded = SentenceTransformer(spec["output"], device="cpu")
    return {
        "modules": [type(m).__name__ for m in reloaded],
        "dimension": reloaded.get_sentence_embedding_dimension(),
        "cosine": held_out_cosine(reloaded, spec["held_out"]),
        "versions": harness.package_versions(["sentence-transformers"]),
    }


def job_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Our trainer: config + ``train(parquet path)`` (loads data and student, trains, saves)."""
    from embedding_distillation.api import EmbeddingDistillationTrainer
    from embedding_distillation.training.config import EmbeddingTrainerConfig

    baseline = harness.peak_rss_mb()
    started = time.perf_counter()
    trainer = EmbeddingDistillationTrainer(
        EmbeddingTrainerConfig(
            student_model=spec["student"],
            num_epochs=1,
            batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            loss_type="mse",
            device="cpu",
            output_dir=spec["output"],
            save_steps=100_000,
            logging_steps=50,
            seed=SEED,
        )
    )
    metrics = trainer.train(spec["train"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "loop_seconds": metrics["train_runtime"],
        "train_loss": metrics["train_loss"],
        "baseline_rss_mb": baseline,
        "cosine": held_out_cosine(trainer.model, spec["held_out"]),
        "versions": harness.package_versions(
            ["embedding-distillation", "torch", "sentence-transformers", "transformers"]
        ),
    }


def job_plain(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain ``SentenceTransformerTrainer`` + ``MSELoss`` on a text + label dataset."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    baseline = harness.peak_rss_mb()
    started = time.perf_counter()
    data = Dataset.from_parquet(spec["train"]).rename_column(TARGET, "label")
    model = SentenceTransformer(spec["student"], device="cpu")
    args = SentenceTransformerTrainingArguments(
        output_dir=spec["output"],
        num_train_epochs=1,
        per_device_train_batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        seed=SEED,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=data, loss=losses.MSELoss(model)
    )
    result = trainer.train()
    model.save(spec["output"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "loop_seconds": float(result.metrics.get("train_runtime", 0.0)),
        "train_loss": float(result.training_loss),
        "baseline_rss_mb": baseline,
        "cosine": held_out_cosine(model, spec["held_out"]),
        "versions": harness.package_versions(["torch", "sentence-transformers", "transformers"]),
    }


def job_distil(spec: dict[str, Any]) -> dict[str, Any]:
    """distil-trainer 0.1.27: its ``train`` takes a Hub id (``load_dataset``) or a ``Dataset``."""
    from datasets import Dataset
    from distil_trainer import EmbeddingDistillationTrainer, EmbeddingTrainerConfig

    baseline = harness.peak_rss_mb()
    started = time.perf_counter()
    data = Dataset.from_parquet(spec["train"])
    trainer = EmbeddingDistillationTrainer(
        EmbeddingTrainerConfig(
            student_model=spec["student"],
            target_type="final",
            num_epochs=1,
            batch_size=BATCH_SIZE,
            learning_rate=LEARNING_RATE,
            loss_type="mse",
            device="cpu",
            output_dir=spec["output"],
            save_steps=100_000,
            logging_steps=50,
        )
    )
    loop_started = time.perf_counter()
    metrics = trainer.train(data)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "loop_seconds": time.perf_counter() - loop_started,
        "train_loss": float(metrics["train_loss"]),
        "baseline_rss_mb": baseline,
        "cosine": held_out_cosine(trainer._original_model, spec["held_out"]),
        "versions": harness.package_versions(
            ["distil-trainer", "torch", "sentence-transformers", "transformers"]
        ),
    }


CHILD_JOBS = {
    "targets": job_targets,
    "student": job_student,
    "ours": job_ours,
    "plain": job_plain,
    "distil": job_distil,
}


# --------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------


def run_child(name: str, spec: dict[str, Any], threads: int, python: Path | str) -> dict:
    """Run this file as a child for ``spec``; logs go to ``.work/runs-train/<name>/``."""
    return harness.run_child(
        name, spec, threads, python, script=Path(__file__).resolve(), runs=RUNS
    )


def prepare_targets(rows: int, threads: int) -> tuple[Path, Path, str]:
    """Cached train/held-out Parquet files under ``.work/train-targets-N/``."""
    folder = WORK / f"train-targets-{rows}"
    train, held_out = folder / "train.parquet", folder / "held_out.parquet"
    if train.exists() and held_out.exists():
        return train, held_out, f"reused cache {folder.relative_to(ROOT)}"
    if not CORPUS.exists():
        sys.exit(f"{CORPUS} is missing: run `python -m embedding_distillation.demo`.")
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "job": "targets",
        "teacher": str(TEACHER),
        "corpus": str(CORPUS),
        "rows": rows,
        "shards": str(folder / "shards"),
        "train": str(train),
        "held_out": str(held_out),
    }
    result = run_child("targets", spec, threads, sys.executable)
    return train, held_out, f"encoded in {result['seconds']:.0f} s with our generator"


def prepare_student(held_out: Path, threads: int) -> dict[str, Any]:
    """Build the shared student folder in the distil-trainer venv (sentence-transformers 5.3)."""
    spec = {
        "job": "student",
        "base": str(STUDENT_BASE),
        "target_dim": 768,
        "output": str(STUDENT_DIR),
        "held_out": str(held_out),
    }
    spec["reuse"] = (STUDENT_DIR / "modules.json").exists()
    if not spec["reuse"]:
        shutil.rmtree(STUDENT_DIR, ignore_errors=True)
    return run_child("student", spec, threads, harness.DISTIL_PYTHON)


LABELS = {
    "ours": "ours (`EmbeddingDistillationTrainer.train`)",
    "plain": "plain `SentenceTransformerTrainer` + `MSELoss`",
    "distil": "distil-trainer 0.1.27 `train()`",
    "ours_auto": "extra: ours on plain MiniLM (own projection, least-squares init)",
}


def fmt(value: float | None, digits: int = 1) -> str:
    """Number or ``n/a``."""
    return harness.fmt(value, digits)


def table(results: dict[str, dict[str, Any]], rows: int) -> str:
    """Markdown table of the three runs."""
    lines = [
        "| run | train s | samples/s | inner loop s | final train loss | peak RSS MB "
        "| held-out cosine |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key, label in LABELS.items():
        r = results.get(key)
        if r is None or "error" in r:
            note = (r or {}).get("error", "not run").splitlines()[0]
            lines.append(f"| {label} | FAILED: {note} | | | | | |")
            continue
        lines.append(
            f"| {label} | {fmt(r['seconds'])} | {fmt(rows / r['seconds'])} | "
            f"{fmt(r['loop_seconds'])} | {r['train_loss']:.5f} | {fmt(r['peak_rss_mb'], 0)} | "
            f"{r['cosine']:.4f} |"
        )
    return "\n".join(lines)


def ratios_table(results: dict[str, dict[str, Any]]) -> str:
    """Ratios against the issue's targets."""

    def ok(key: str) -> bool:
        return key in results and "error" not in results[key]

    lines = ["| comparison | value | target | met |", "|---|--:|--:|---|"]
    if ok("ours") and ok("distil"):
        speed = results["distil"]["seconds"] / results["ours"]["seconds"]
        lines.append(
            f"| samples/s ours / distil-trainer | {speed:.2f} | >= 1.5 | "
            f"{'yes' if speed >= 1.5 else 'NO'} |"
        )
        ours_cos, distil_cos = results["ours"]["cosine"], results["distil"]["cosine"]
        lines.append(
            f"| held-out cosine ours vs distil-trainer | {ours_cos:.4f} vs {distil_cos:.4f} "
            f"(diff {ours_cos - distil_cos:+.4f}) | ours >= distil-trainer | "
            f"{'yes' if ours_cos >= distil_cos else 'NO'} |"
        )
    if ok("ours") and ok("plain"):
        speed = results["plain"]["seconds"] / results["ours"]["seconds"]
        lines.append(f"| samples/s ours / plain | {speed:.2f} | (reported) | |")
    return "\n".join(lines)


def versions_text(results: dict[str, dict[str, Any]]) -> str:
    """Package versions each child reported."""
    lines = []
    for key, label in LABELS.items():
        versions = results.get(key, {}).get("versions")
        if versions:
            lines.append(f"- {label}: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return "\n".join(lines)


def results_markdown(
    results: dict[str, dict[str, Any]], student: dict[str, Any], context: dict[str, str]
) -> str:
    """Full RESULTS_train.md text."""
    return f"""# Training benchmark results

- command: `{context["command"]}`
- date: {context["date"]}
- CPU: {context["cpu"]} ({os.cpu_count()} logical cores), load average at start {context["load"]}
- threads: {context["threads"]} (`OMP_NUM_THREADS`, `MKL_NUM_THREADS`, `RAYON_NUM_THREADS`,
  `torch.set_num_threads`) in every child
- training rows: {context["rows"]} (the first rows of `data/01_raw/corpus/demo_corpus.parquet`);
  held-out rows: the next {HELD_OUT}; targets: `teacher_embedding_final` of
  `data/01_raw/models/all-mpnet-base-v2` (768-d), {context["targets"]}
- student: `benchmarks/.work/student-dense` = all-MiniLM-L6-v2 + Dense(384 -> 768, identity,
  seeded random init) + Normalize ({" -> ".join(student["modules"])}); held-out cosine before
  training {student["cosine"]:+.4f}
- one epoch, batch {BATCH_SIZE}, learning rate {LEARNING_RATE:g}, MSE loss, device cpu
- total runtime: {context["runtime"]}

**train s** runs from before the trainer (or model) is built to the trained model saved:
student load, training data read, the epoch and the save; **samples/s** = training rows / train
s. **inner loop s** is the training loop alone (`train_runtime` of the Hugging Face trainer for
ours and plain; the `train()` call for distil-trainer, whose student loads in its constructor).
**peak RSS** is `ru_maxrss` of the child at the end (held-out encoding included). **held-out
cosine** is the mean cosine between the trained student's embeddings of the {HELD_OUT} held-out
texts and their teacher embeddings, computed in the child with numpy.

## Runs

{table(results, int(context["rows"].replace(",", "")))}

## Ratios and targets

{ratios_table(results)}

## Versions

{versions_text(results)}

## How each tool was called

- ours: `EmbeddingDistillationTrainer(EmbeddingTrainerConfig(student_model=STUDENT,
  num_epochs=1, batch_size=32, learning_rate=1e-4, loss_type="mse", device="cpu",
  output_dir=OUT, save_steps=100000, logging_steps=50)).train("train.parquet")` (student and
  target dims are equal, so no projection is added);
- plain: `SentenceTransformerTrainer(model, SentenceTransformerTrainingArguments(
  num_train_epochs=1, per_device_train_batch_size=32, learning_rate=1e-4, use_cpu=True,
  report_to="none", save_strategy="no"), train_dataset=Dataset.from_parquet(...)` with the
  target column renamed `label`, `loss=losses.MSELoss(model)).train()`, then `model.save`;
- distil-trainer (own venv): `EmbeddingDistillationTrainer(EmbeddingTrainerConfig(
  student_model=STUDENT, target_type="final", num_epochs=1, batch_size=32, learning_rate=1e-4,
  loss_type="mse", device="cpu", output_dir=OUT, save_steps=100000, logging_steps=50))
  .train(Dataset.from_parquet("train.parquet"))` (a string goes to `load_dataset` as a Hub id).
- extra row (not part of the targets): ours with `student_model` = the bare all-MiniLM-L6-v2
  folder; ours then appends its own Dense(384 -> 768) before Normalize, initialised by a
  least-squares fit of the student's embeddings to the targets (its default), instead of the
  shared folder's random Dense. Its train s includes that fit.
{context["errors"]}"""


def wait_until_quiet(limit_s: float = 300.0) -> None:
    """Wait (up to ``limit_s``) for a 1-minute load average below 1.0."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= 1.0 and time.monotonic() < deadline:
        print(f"  waiting for a quiet machine (load {harness.load_average()}) ...", flush=True)
        time.sleep(20)


def run_benchmark(args: argparse.Namespace) -> None:
    """Targets, student, three runs, report."""
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"Training benchmark: {args.rows} rows, {args.threads} threads")
    harness.ensure_distil_venv()
    train, held_out, targets_note = prepare_targets(args.rows, args.threads)
    student = prepare_student(held_out, args.threads)
    if args.wait:
        wait_until_quiet()
    context = {
        "command": shlex.join(["python", "benchmarks/train.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": harness.cpu_model(),
        "load": harness.load_average(),
        "threads": str(args.threads),
        "rows": f"{args.rows:,}",
        "targets": targets_note,
    }
    outputs = WORK / "train-outputs"
    base = {"student": str(STUDENT_DIR), "train": str(train), "held_out": str(held_out)}
    results: dict[str, dict[str, Any]] = {}
    for key, python in (
        ("ours", sys.executable),
        ("plain", sys.executable),
        ("distil", harness.DISTIL_PYTHON),
        ("ours_auto", sys.executable),
    ):
        output = outputs / key
        shutil.rmtree(output, ignore_errors=True)
        spec = {**base, "job": key, "output": str(output)}
        if key == "ours_auto":  # what a user of ours gets from the bare 384-d student
            spec.update(job="ours", student=str(STUDENT_BASE))
        try:
            results[key] = run_child(key, spec, args.threads, python)
        except (harness.ChildFailedError, OSError) as error:
            print(f"    {key} failed: {error}", flush=True)
            results[key] = {"error": str(error)}
    errors = "".join(
        f"\n**{LABELS[k]} failed:**\n\n```\n{r['error']}\n```\n"
        for k, r in results.items()
        if "error" in r
    )
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    context["runtime"] = f"{int(minutes)} min {seconds:.0f} s"
    context["errors"] = errors
    print()
    print(table(results, args.rows))
    print()
    print(ratios_table(results))
    print(f"\nTotal runtime {context['runtime']}; written to {RESULTS_FILE.relative_to(ROOT)}")
    RESULTS_FILE.write_text(results_markdown(results, student, context))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1500, help="training rows (default 1500)")
    parser.add_argument("--threads", type=int, default=2, help="threads per child (default 2)")
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="do not wait (up to 5 min) for a load average below 1.0 before the runs",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    """Entry point: the parent benchmark, or one child job with ``--child``."""
    args = parse_args()
    if args.child:
        harness.child_main(json.loads(args.child), CHILD_JOBS)
    else:
        run_benchmark(args)


if __name__ == "__main__":
    main()
