"""The report's STS Benchmark figure against the one published for the same models.

Runs the models through exactly the code the evaluation node uses (``from_sentence_transformer``
+ the local STSBenchmark task + ``mteb.evaluate``), in float32 on the CPU, and prints them next
to the STSBenchmark scores on their model cards (MTEB, cosine Spearman x100 on the test split).

    python benchmarks/sts_reference.py            # about 3 min on 2 quiet cores
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "data/01_raw/models"
STS_TEST = ROOT / "data/01_raw/sts_benchmark/test.parquet"
# STSBenchmark main score (cosine Spearman x100, test split) on each model card (MTEB).
PUBLISHED = {"all-mpnet-base-v2": 83.42, "all-MiniLM-L6-v2": 82.03}
TOLERANCE = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.evaluation.encoders import from_sentence_transformer
    from embedding_distillation.evaluation.mteb_tasks import (
        local_sts_benchmark,
        run_tasks,
        sts_benchmark_scores,
    )

    torch.set_num_threads(args.threads)
    if not STS_TEST.exists():
        sys.exit(f"{STS_TEST} is missing: run `python -m embedding_distillation.demo` first.")
    task = local_sts_benchmark(Dataset.from_parquet(str(STS_TEST)))
    print("| model | ours: Spearman | model card | difference | ours: Pearson | seconds |")
    print("|---|--:|--:|--:|--:|--:|")
    failed = False
    for name, published in PUBLISHED.items():
        model = SentenceTransformer(str(MODELS / name), device="cpu")
        started = time.perf_counter()
        runs = run_tasks(from_sentence_transformer(model, name), "reference", [task], batch_size=32)
        seconds = time.perf_counter() - started
        scores = sts_benchmark_scores(runs)
        difference = scores["spearman"] - published
        failed |= abs(difference) > TOLERANCE
        print(
            f"| {name} | {scores['spearman']:.4f} | {published:.2f} | {difference:+.4f} "
            f"| {scores['pearson']:.4f} | {seconds:.0f} |"
        )
    print(f"\n{'FAIL' if failed else 'PASS'}: every difference within {TOLERANCE}")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
