"""Training memory and speed with and without ``gradient_checkpointing``, on the quality recipe.

The student is the one of ``benchmarks/RESULTS_quality.md``: the demo teacher all-mpnet-base-v2
cut to its layers 0 2 4 6 8 11 (67 M parameters). transformers has no activation checkpointing
for MPNet; ``training/checkpointing.py`` runs each layer under ``torch.utils.checkpoint``. On CPU
the peak RSS of a training run is set by its longest batch, whose activations grow with the
padded length, so each setting is trained on two row sets of the demo corpus: its longest texts
(the batches that set the peak of a whole-corpus run) and random texts (a typical batch). The
targets are random unit vectors: memory and speed do not depend on their values.

Each run is a child process (``--child SPEC``) with the same threads, rows, batch size and
seed; it reports ``ru_maxrss`` before and after training and the trainer's samples/s. The script
prints a Markdown table and writes it to ``benchmarks/RESULTS_train_checkpointing.md``.

Usage::

    python benchmarks/train_checkpointing.py [--rows 128] [--threads 2]
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # stdlib-only helpers shared by the benchmarks

WORK = harness.WORK / "train-checkpointing"
RESULTS_FILE = harness.BENCH_DIR / "RESULTS_train_checkpointing.md"
STUDENT_INIT = (0, 2, 4, 6, 8, 11)
TARGET_DIM = 768
BATCH_SIZE = 32
ROW_SETS = ("longest", "random")


# --------------------------------------------------------------------------------------------
# Child side: heavy imports happen inside the function.
# --------------------------------------------------------------------------------------------


def job_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train the cut student for one epoch on ``spec['rows']`` texts of one row set."""
    import numpy as np
    import pyarrow.parquet as pq
    from datasets import Dataset

    from embedding_distillation.training.config import EmbeddingTrainerConfig
    from embedding_distillation.training.student import prepare_student
    from embedding_distillation.training.trainer import train_student

    texts = pq.read_table(spec["corpus"], columns=["text"]).column("text").to_pylist()
    lengths = np.array([len(text) for text in texts])
    rng = np.random.default_rng(0)
    if spec["row_set"] == "longest":
        picked = np.argsort(-lengths, kind="stable")[: spec["rows"]]
    else:
        picked = rng.permutation(len(texts))[: spec["rows"]]
    targets = rng.normal(size=(len(picked), TARGET_DIM)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    data = Dataset.from_dict(
        {"text": [texts[i] for i in picked], "teacher_embedding_final": list(targets)}
    )
    config = EmbeddingTrainerConfig(
        student_model=spec["student"],
        student_init=STUDENT_INIT,
        loss_type="cosine",
        learning_rate=2e-4,
        num_epochs=1,
        batch_size=BATCH_SIZE,
        device="cpu",
        gradient_checkpointing=spec["checkpointing"],
        output_dir=str(Path(spec["run_dir"]) / "checkpoints"),
        save_steps=10**6,
        logging_steps=10**6,
    )
    model = prepare_student(config, TARGET_DIM, data)
    rss_prepared = harness.peak_rss_mb()
    start = time.perf_counter()
    metrics = train_student(model, data, config)
    return {
        "rows": len(picked),
        "max_chars": int(lengths[picked].max()),
        "median_chars": int(np.median(lengths[picked])),
        "rss_prepared_mb": rss_prepared,
        "seconds": time.perf_counter() - start,
        "samples_per_second": metrics["train_samples_per_second"],
        "train_loss": metrics["train_loss"],
        "steps": metrics["global_step"],
    }


CHILD_JOBS = {"train": job_train}


# --------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> str:
    """Train every (row set, checkpointing) pair in its own child; return the Markdown report."""
    started = time.time()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    results: dict[tuple[str, bool], dict[str, Any]] = {}
    for row_set in ROW_SETS:
        for checkpointing in (False, True):
            name = f"{row_set}-{'checkpointing' if checkpointing else 'plain'}"
            run_dir = WORK / "runs" / name
            spec = {
                "job": "train",
                "corpus": str(args.corpus),
                "student": str(args.student),
                "rows": args.rows,
                "row_set": row_set,
                "checkpointing": checkpointing,
                "run_dir": str(run_dir),
            }
            results[row_set, checkpointing] = harness.run_child(
                name, spec, args.threads, script=Path(__file__).resolve(), runs=WORK / "runs"
            )
    minutes, seconds = divmod(int(time.time() - started), 60)
    lines = [
        "# Training with and without gradient_checkpointing",
        "",
        f"- command: `python benchmarks/train_checkpointing.py --rows {args.rows} "
        f"--threads {args.threads}`",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {harness.cpu_model()}, load average at start {load}",
        f"- threads: {args.threads} per child; total runtime {minutes} min {seconds} s",
        f"- student: `{Path(args.student).name}` cut to its layers "
        f"{' '.join(map(str, STUDENT_INIT))} (the quality recipe); cosine loss, batch "
        f"{BATCH_SIZE}, one epoch, device cpu",
        f"- rows: {args.rows} texts of `{Path(args.corpus).name}`, either its longest or a "
        "random sample (seed 0); random unit 768-d targets",
        "",
        "**RSS before training** is `ru_maxrss` after the student is loaded; **peak RSS** at the "
        "end of training; **training adds** is the difference (activations, gradients and "
        "optimizer state).",
        "",
        "| rows | chars max / median | gradient_checkpointing | RSS before training MB "
        "| peak RSS MB | training adds MB | train s | samples/s | loss |",
        "|---|--:|:-:|--:|--:|--:|--:|--:|--:|",
    ]
    for (row_set, checkpointing), result in results.items():
        added = result["peak_rss_mb"] - result["rss_prepared_mb"]
        lines.append(
            f"| {row_set} | {result['max_chars']} / {result['median_chars']} "
            f"| {'yes' if checkpointing else 'no'} | {result['rss_prepared_mb']:,.0f} "
            f"| {result['peak_rss_mb']:,.0f} | {added:,.0f} | {result['seconds']:.1f} "
            f"| {result['samples_per_second']:.2f} | {result['train_loss']:.4f} |"
        )
    lines += ["", "| rows | peak RSS, checkpointing / plain | samples/s, checkpointing / plain |"]
    lines.append("|---|--:|--:|")
    for row_set in ROW_SETS:
        plain, checkpointed = results[row_set, False], results[row_set, True]
        lines.append(
            f"| {row_set} | {checkpointed['peak_rss_mb'] / plain['peak_rss_mb']:.2f} "
            f"| {checkpointed['samples_per_second'] / plain['samples_per_second']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128, help="texts per run (default 128)")
    parser.add_argument("--threads", type=int, default=2, help="torch/BLAS threads per child")
    parser.add_argument("--corpus", type=Path, default=harness.DEFAULT_CORPUS)
    parser.add_argument("--student", type=Path, default=harness.DEFAULT_TEACHER)
    parser.add_argument("--results", type=Path, default=RESULTS_FILE)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    """Entry point: the parent benchmark, or one child job with ``--child``."""
    args = parse_args()
    if args.child:
        harness.child_main(json.loads(args.child), CHILD_JOBS)
        return
    report = run_benchmark(args)
    args.results.write_text(report)
    print(report)
    print(f"written to {args.results}")


if __name__ == "__main__":
    main()
