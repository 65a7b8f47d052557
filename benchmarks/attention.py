"""MPNet attention: transformers' eager attention against sdpa (``attention.py``), on the CPU.

transformers runs MPNet (all-mpnet-base-v2, the demo's teacher and the quality recipe's student)
only with eager attention; the project runs each MPNet self-attention module through
``torch.nn.functional.scaled_dot_product_attention``. This script measures the two side by side
in ONE process, alternating eager and sdpa on the same texts, so that drift in the machine's
speed over the run falls on both alike (the first round is a warm-up and is not counted; the
figures are medians of the rounds after it):

- **encode**: ``SentenceTransformer.encode`` (batch 32) of the demo teacher in float32 and in
  bfloat16 (weights cast), on random texts of the demo corpus and on its longest texts; texts/s;
- **train step**: one forward and backward pass (batch 32, training mode: dropout on) of the
  quality recipe's student (the teacher cut to its layers 0 2 4 6 8 11), on a random batch and
  on the longest texts; seconds per step.

It also prints how far the two agree: the largest absolute difference and the lowest cosine
between their embeddings of the same texts. Writes ``benchmarks/RESULTS_attention.md``.

Usage::

    python benchmarks/attention.py [--threads 2] [--rounds 4] [--texts 128]
"""

import argparse
import copy
import datetime
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # stdlib-only helpers shared by the benchmarks

RESULTS_FILE = harness.BENCH_DIR / "RESULTS_attention.md"
STUDENT_INIT = (0, 2, 4, 6, 8, 11)
BATCH_SIZE = 32


def pick_texts(texts: list[str], row_set: str, count: int) -> list[str]:
    """The ``count`` longest texts, or ``count`` random ones (seed 0)."""
    import random

    if row_set == "longest":
        return sorted(texts, key=len, reverse=True)[:count]
    return random.Random(0).sample(texts, count)


def alternate(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each run once per round, in turn; the first round is a warm-up and is dropped."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(rounds):
        for name, run in runs.items():
            elapsed = run()
            if round_index:
                seconds[name].append(elapsed)
    return seconds


def timed(call: Callable[[], Any]) -> Callable[[], float]:
    """``call`` made to return its wall seconds."""

    def run() -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    return run


def measure(threads: int, rounds: int, count: int) -> tuple[list[list[str]], list[str]]:
    """All measurements; returns the table rows and the agreement notes."""
    import pyarrow.parquet as pq
    import torch
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.attention import use_fused_attention
    from embedding_distillation.training.student_init import keep_layers

    torch.set_num_threads(threads)
    texts = pq.read_table(harness.DEFAULT_CORPUS, columns=["text"]).column("text").to_pylist()
    eager = SentenceTransformer(str(harness.DEFAULT_TEACHER), device="cpu").eval()
    fused = copy.deepcopy(eager)
    use_fused_attention(fused)
    models = {"eager": eager, "sdpa": fused}
    rows, notes = [], []

    for dtype in (torch.float32, torch.bfloat16):
        precision = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
        cast = {name: copy.deepcopy(model).to(dtype) for name, model in models.items()}
        for row_set in ("random", "longest"):
            batch = pick_texts(texts, row_set, count)
            runs = {
                name: timed(functools.partial(model.encode, batch, batch_size=BATCH_SIZE))
                for name, model in cast.items()
            }
            seconds = alternate(runs, rounds)
            speed = {name: count / statistics.median(values) for name, values in seconds.items()}
            rows.append(row(f"encode, {precision}", row_set, count, speed, "texts/s", True))
            a, b = (cast[n].encode(batch, convert_to_tensor=True).float() for n in cast)
            cosine = torch.nn.functional.cosine_similarity(a, b).min().item()
            notes.append(
                f"encode, {precision}, {row_set} texts: max abs difference "
                f"{(a - b).abs().max().item():.2e}, lowest cosine {cosine:.7f}"
            )
        del cast

    students = {name: keep_layers(copy.deepcopy(m), STUDENT_INIT) for name, m in models.items()}
    del models, eager, fused
    for row_set in ("random", "longest"):
        batch = pick_texts(texts, row_set, BATCH_SIZE)
        runs = {n: timed(functools.partial(train_step, s, batch)) for n, s in students.items()}
        seconds = alternate(runs, rounds)
        median = {name: statistics.median(values) for name, values in seconds.items()}
        rows.append(row("train step, float32", row_set, BATCH_SIZE, median, "s", False))
    return rows, notes


def train_step(model: Any, batch: list[str]) -> None:
    """One forward and backward pass in training mode (dropout on); gradients are discarded."""
    model.train()
    model.zero_grad(set_to_none=True)
    features = model.tokenize(batch)
    model(dict(features))["sentence_embedding"].pow(2).sum().backward()


def row(
    what: str,
    row_set: str,
    count: int,
    value: dict[str, float],
    unit: str,
    higher_is_better: bool,
) -> list[str]:
    """A table row: the eager and sdpa figures and the gain of sdpa (above 1: sdpa is faster)."""
    gain = value["sdpa"] / value["eager"] if higher_is_better else value["eager"] / value["sdpa"]
    return [
        what,
        f"{row_set} ({count})",
        f"{value['eager']:.2f} {unit}",
        f"{value['sdpa']:.2f} {unit}",
        f"{gain:.2f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="rounds, the first a warm-up")
    parser.add_argument("--texts", type=int, default=128, help="texts per encode run")
    args = parser.parse_args()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)  # before torch is imported (in measure)
    os.environ["HF_HUB_OFFLINE"] = "1"
    started = time.time()
    load = os.getloadavg()
    rows, notes = measure(args.threads, args.rounds, args.texts)
    minutes, secs = divmod(round(time.time() - started), 60)
    command = "python benchmarks/attention.py" + "".join(
        f" --{k} {v}" for k, v in vars(args).items() if v != parser.get_default(k)
    )
    table = [
        "| run | texts | eager | sdpa | sdpa gain |",
        "|---|---|--:|--:|--:|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]
    report = [
        "# MPNet attention: eager against sdpa on the CPU",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {harness.cpu_model()} ({os.cpu_count()} logical cores), load average at start "
        f"{', '.join(f'{x:.2f}' for x in load)}; threads: {args.threads}",
        f"- rounds: {args.rounds} (the first a warm-up), eager and sdpa alternating in one "
        f"process; medians; total runtime {minutes} min {secs:02d} s",
        "- encode: the demo teacher all-mpnet-base-v2 (12 layers), batch 32, weights in float32 "
        "or cast to bfloat16; train step: the "
        "teacher cut to its layers 0 2 4 6 8 11 (the quality recipe's student), batch 32, "
        "forward + backward in training mode",
        "- versions: "
        + ", ".join(
            f"{k} {v}" for k, v in harness.package_versions(["torch", "transformers"]).items()
        ),
        "",
        *table,
        "",
        "Agreement of the two (embeddings of the same texts):",
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    text = "\n".join(report)
    print(text)
    RESULTS_FILE.write_text(text)
    print(f"written to {RESULTS_FILE}")


if __name__ == "__main__":
    main()
