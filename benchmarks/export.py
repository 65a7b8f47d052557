"""Exported students side by side: speed, STS Benchmark and agreement, in one run.

Every model encodes the STS Benchmark test sentences in its own child process with the same
thread count: the teacher and the student in torch float32, the student's exports (ONNX, int8
ONNX, OpenVINO, int8 OpenVINO) through the project's torch-free runtime, and, when given, a
static-embedding student and the untrained model2vec distillation it started from. STS-B comes
from the evaluation's own code path (mteb's STSBenchmark task on the local pairs).

    python benchmarks/export.py --student data/06_models/student_model/<version>/student_model
    python benchmarks/export.py --student S --exports E --static T --static-base B --threads 2

Without ``--exports`` the student is exported first (``export_student``, every default format)
into ``benchmarks/.work/export/``. The table goes to ``benchmarks/RESULTS_export.md``.
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import harness

STS_TEST = harness.ROOT / "data/01_raw/sts_benchmark/test.parquet"
EXPORT_DIR = harness.WORK / "export"
RESULTS = harness.BENCH_DIR / "RESULTS_export.md"
WARM_UP_TEXTS = 64
INT8_SPEED_TARGET, INT8_QUALITY_TARGET = 15.0, 97.0  # x teacher texts/s, % of teacher STS-B
STATIC_SPEED_TARGET, STATIC_QUALITY_TARGET = 100.0, 90.0
EXPORTS = ("onnx", "onnx_int8", "openvino", "openvino_int8")


def sts_sentences() -> list[str]:
    """Every distinct sentence of the STS-B test pairs, in first-seen order."""
    from datasets import Dataset

    pairs = Dataset.from_parquet(str(STS_TEST))
    return list(dict.fromkeys([*pairs["sentence1"], *pairs["sentence2"]]))


def child_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Time one model on the STS-B sentences, score it on STS-B, keep its embeddings."""
    import numpy as np
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.evaluation.encoders import from_export, from_sentence_transformer
    from embedding_distillation.evaluation.mteb_tasks import (
        local_sts_benchmark,
        run_tasks,
        sts_benchmark_scores,
    )

    threads = spec["threads"]
    if spec["kind"] == "torch":
        started = time.perf_counter()
        model = from_sentence_transformer(SentenceTransformer(spec["path"], device="cpu"), "m")
    else:
        started = time.perf_counter()
        model = from_export(Path(spec["path"]), spec["kind"], "m", threads=threads)
    load_seconds = time.perf_counter() - started
    texts = sts_sentences()
    model.encoder.encode(texts[:WARM_UP_TEXTS], batch_size=32)
    started = time.perf_counter()
    embeddings = model.encoder.encode(texts, batch_size=32)
    seconds = time.perf_counter() - started
    np.save(spec["embeddings"], np.asarray(embeddings, dtype=np.float32))
    task = local_sts_benchmark(Dataset.from_parquet(str(STS_TEST)))
    scores = sts_benchmark_scores(run_tasks(model, "bench", [task], batch_size=32))
    return {
        "texts": len(texts),
        "seconds": seconds,
        "texts_per_second": len(texts) / seconds,
        "load_seconds": load_seconds,
        "spearman": scores["spearman"],
        "pearson": scores["pearson"],
        "size_mb": model.size_mb,
    }


def export_if_needed(student: Path, exports: Path | None) -> Path:
    """The export folder: the one given, or a fresh export of ``student``."""
    if exports is not None:
        return exports
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.export.student_export import export_student

    print(f"  exporting {student} into {EXPORT_DIR} ...", flush=True)
    started = time.perf_counter()
    export_student(SentenceTransformer(str(student), device="cpu"), EXPORT_DIR, torch_weights=False)
    print(f"    {time.perf_counter() - started:.0f} s", flush=True)
    return EXPORT_DIR


def min_cosine(reference: Any, embeddings: Any) -> float:
    """The smallest row-wise cosine between two embedding matrices of the same texts."""
    import numpy as np

    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(embeddings, axis=1)
    return float(np.min(np.sum(reference * embeddings, axis=1) / np.maximum(norms, 1e-12)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--student", type=Path, help="trained student folder (torch)")
    parser.add_argument("--exports", type=Path, help="its export folder (default: export it)")
    parser.add_argument("--static", type=Path, help="a trained static-embedding student")
    parser.add_argument("--static-base", type=Path, help="the untrained model2vec distillation")
    parser.add_argument("--teacher", type=Path, default=harness.DEFAULT_TEACHER)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        harness.child_main(json.loads(args.child), {"encode": child_job})
        return 0
    if args.student is None:
        parser.error("--student is required")
    if not STS_TEST.exists():
        sys.exit(f"{STS_TEST} is missing: run `python -m embedding_distillation.demo` first.")
    exports = export_if_needed(args.student, args.exports)
    runs: list[tuple[str, str, Path]] = [
        ("teacher (torch fp32)", "torch", args.teacher),
        ("student (torch fp32)", "torch", args.student),
        *((f"student {name}", name, exports) for name in EXPORTS),
    ]
    if args.static_base:
        runs.append(("static, untrained model2vec (torch)", "torch", args.static_base))
    if args.static:
        runs.append(("static student (torch)", "torch", args.static))
    results: dict[str, dict[str, Any]] = {}
    for label, kind, path in runs:
        name = label.split(" (")[0].replace(" ", "_").replace(",", "")
        spec = {
            "job": "encode",
            "kind": kind,
            "path": str(path),
            "embeddings": str(harness.WORK / f"export-{name}.npy"),
        }
        try:
            results[label] = harness.run_child(f"export-{name}", spec, args.threads)
            results[label]["embeddings"] = spec["embeddings"]
        except harness.ChildFailedError as error:
            print(f"    failed: {error}", flush=True)
    write_results(args, results)
    return 0


def write_results(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    """Print the table and write it, with the command and the machine, to ``args.results``."""
    import numpy as np

    teacher = results.get("teacher (torch fp32)")
    student = results.get("student (torch fp32)")
    reference = np.load(student["embeddings"]) if student else None
    lines = [
        "| model | texts/s | x teacher | STS-B Spearman | % of teacher | size MB "
        "| min cosine to the torch student |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for label, result in results.items():
        speedup = result["texts_per_second"] / teacher["texts_per_second"] if teacher else None
        share = 100 * result["spearman"] / teacher["spearman"] if teacher else None
        agreement = None
        if reference is not None and label.startswith("student "):
            agreement = min_cosine(reference, np.load(result["embeddings"]))
        lines.append(
            f"| {label} | {harness.fmt(result['texts_per_second'])} | {harness.fmt(speedup, 2)} "
            f"| {result['spearman']:.2f} | {harness.fmt(share)} | {harness.fmt(result['size_mb'])} "
            f"| {'n/a' if agreement is None else f'{agreement:.6f}'} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    command = "python benchmarks/export.py " + " ".join(sys.argv[1:])
    texts = next(iter(results.values()))["texts"] if results else 0
    text = f"""# Exported and static students, side by side

```bash
{command}
```

- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; CPU: {harness.cpu_model()};
  threads: {args.threads}; load average at the end: {harness.load_average()}
- texts: the {texts:,} distinct sentences of the STS Benchmark test split, batch 32, one
  warm-up batch, then one timed pass; each model in its own process
- STS-B: cosine Spearman x100 on the test pairs, through mteb's STSBenchmark task (the
  evaluation's code path); size: weights in memory (torch) or model files on disk (exports)
- targets (issue 15): an int8 export at least {INT8_SPEED_TARGET:g}x the teacher's texts/s
  keeping at least {INT8_QUALITY_TARGET:g} % of its STS-B; the static student at least
  {STATIC_SPEED_TARGET:g}x, at least {STATIC_QUALITY_TARGET:g} % and above the untrained
  model2vec distillation

{table}
"""
    args.results.write_text(text + _hand_written(args.results))
    print(f"\nwritten to {args.results}")


HAND_WRITTEN = "<!-- hand-written below -->"


def _hand_written(results: Path) -> str:
    """The hand-written sections at the end of an earlier results file (kept by a rerun)."""
    old = results.read_text() if results.exists() else ""
    return "\n" + old[old.index(HAND_WRITTEN) :] if HAND_WRITTEN in old else ""


if __name__ == "__main__":
    sys.exit(main())
