"""The distillation recipe, measured: a sweep of training settings on rows of the large corpus.

Each cell trains all-MiniLM-L6-v2 (+ its projection to the teacher's 768-d) on the same teacher
embeddings through the project's Python API, keeping its best evaluated step by STS-B dev, then
measures the kept student: STS-B dev (what the settings are chosen on; never test), the
retrieval yardstick (nDCG@10, its own and against the teacher's index: 1,000 held-out vital
articles), the mean cosine to the teacher on 1,000 held-out rows, and the minutes it took.

    . .venv/bin/activate
    python -m embedding_distillation.demo                    # once: models, corpora, STS-B
    python benchmarks/quality_sweep.py prepare --rows 30000  # teacher embeddings (resumable)
    python benchmarks/quality_sweep.py cell NAME key=value   # one cell (EmbeddingTrainerConfig)
    python benchmarks/quality_sweep.py cell --rows 0 NAME key=value  # on the demo's rows
    python benchmarks/quality_sweep.py prepare --rows -1     # the STS-B train sentences, then
    python benchmarks/quality_sweep.py cell --rows -1 NAME key=value  # train on them
    python benchmarks/quality_sweep.py cell --rows -2 --sts-share 0.33 NAME key=value  # a mix
    python benchmarks/quality_sweep.py table                 # the table of every cell run

``cell untrained`` measures the student before training (no key=value). Results go to
``benchmarks/.work/sweep/results.jsonl`` (one JSON line per cell; a rerun of a name replaces it).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
WORK = ROOT / "benchmarks" / ".work" / "sweep"
RESULTS = WORK / "results.jsonl"
TEACHER = DATA / "01_raw/models/all-mpnet-base-v2"
STUDENT = DATA / "01_raw/models/all-MiniLM-L6-v2"
CORPUS = DATA / "01_raw/corpus/large_corpus.parquet"
STS_DEV = DATA / "01_raw/sts_benchmark/dev.parquet"
STS_TEST = DATA / "01_raw/sts_benchmark/test.parquet"
STS_TRAIN_ROWS = -1  # --rows -1: the STS-B train split's sentences (unscored), not the corpus
DEMO_STS_ROWS = -2  # --rows -2: the demo's rows, a share of them swapped for STS-B train sentences
RETRIEVAL = DATA / "01_raw/retrieval/vital_retrieval.parquet"
CACHE = DATA / "04_feature/embedding_cache"
HELDOUT_ROWS = 1000
FINAL = "teacher_embedding_final"

# The settings every cell shares unless it overrides them.
BASE = {
    "num_epochs": 1,
    "batch_size": 64,
    "learning_rate": 1e-4,
    "loss_type": "cosine",  # the sweep's base recipe (conf/base now trains with "similarity")
    "eval_steps": 100,
    "logging_steps": 50,
    "save_steps": 100_000,  # no checkpoints: a cell is short
    # A cell measures its last step (what the settings did); the table adds the best evaluated
    # step by STS-B dev, which is what the pipeline would keep.
    "load_best_model_at_end": False,
}


def _bf16() -> bool:
    """bfloat16 where the CPU has AVX512-BF16 (elsewhere torch emulates it, slower)."""
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and "avx512_bf16" in cpuinfo.read_text(encoding="utf-8")


def prepare(rows: int) -> None:
    """Teacher embeddings of the first ``rows`` + ``HELDOUT_ROWS`` texts of the large corpus.

    ``rows`` -1: of the STS Benchmark *train* split's sentences instead (no scores; the two
    sentences of a pair one after the other), a corpus of texts like STS-B's.
    """
    from embedding_distillation import TeacherEmbeddingsGenerator

    started = time.perf_counter()
    generator = TeacherEmbeddingsGenerator(str(TEACHER), batch_size=32, use_bf16=_bf16())
    source, limit = str(CORPUS), rows + HELDOUT_ROWS
    if rows == STS_TRAIN_ROWS:
        source, limit = _sts_train_texts(), None
    dataset = generator.generate(source, max_samples=limit, output_dir=WORK / f"embeddings-{rows}")
    print(f"{len(dataset):,} rows in {time.perf_counter() - started:,.0f} s (bf16: {_bf16()})")


def _sts_train_texts() -> str:
    """A parquet file of the STS-B train split's distinct sentences, pairs kept together."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embedding_distillation.demo.sts_benchmark import sts_b_sentences

    path = WORK / "sts_train_texts.parquet"
    WORK.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": sts_b_sentences(DATA, "train")}), path)
    return str(path)


def _value(text: str) -> Any:
    """A key=value value: JSON where it parses (numbers, null, true), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _rows(rows: int, sts_share: float = 0.0) -> tuple[Any, Any]:
    """(training rows, held-out rows): of the large corpus, or the demo's (``rows`` 0).

    ``rows`` -1: the STS-B train sentences, held out against the demo's held-out rows.
    ``rows`` -2: the demo's rows with ``sts_share`` of them swapped for STS-B train sentences
    (none that also occur in the dev or test split), shuffled; the demo's held-out rows.

    Large corpus: the first ``rows`` embedded rows and the ``HELDOUT_ROWS`` after them. Demo:
    the pipeline's own split of its 3,000 rows (``kedro run`` wrote it to
    ``data/05_model_input``).
    """
    from datasets import load_from_disk

    from embedding_distillation.corpus import load_corpus

    if rows in (0, STS_TRAIN_ROWS, DEMO_STS_ROWS):
        inputs = DATA / "05_model_input"
        heldout = sorted((inputs / "heldout_embeddings").iterdir())[-1] / "heldout_embeddings"
        demo = load_from_disk(str(inputs / "train_embeddings")).select_columns(["text", FINAL])
        sts = load_corpus(str(WORK / f"embeddings-{STS_TRAIN_ROWS}")).select_columns(
            ["text", FINAL]
        )
        train = demo if rows == 0 else sts if rows == STS_TRAIN_ROWS else _mix(demo, sts, sts_share)
        return train, load_from_disk(str(heldout)).select_columns(["text", FINAL])
    data = load_corpus(str(WORK / f"embeddings-{rows}")).select_columns(["text", FINAL])
    return data.select(range(rows)), data.select(range(rows, rows + HELDOUT_ROWS))


def _mix(demo: Any, sts: Any, share: float) -> Any:
    """``len(demo)`` rows: ``share`` of them STS-B train sentences not in dev/test, shuffled."""
    import pyarrow.parquet as pq
    from datasets import concatenate_datasets

    evaluated = set()
    for path in (STS_DEV, STS_TEST):
        pairs = pq.read_table(path).to_pydict()
        evaluated |= set(pairs["sentence1"]) | set(pairs["sentence2"])
    sts = sts.filter(lambda row: row["text"] not in evaluated).shuffle(seed=42)
    n_sts = round(share * len(demo))
    mixed = concatenate_datasets([demo.select(range(len(demo) - n_sts)), sts.select(range(n_sts))])
    return mixed.shuffle(seed=42).flatten_indices()


def cell(name: str, rows: int, overrides: dict[str, Any], sts_share: float = 0.0) -> dict[str, Any]:
    """Train (unless ``name`` is ``untrained``) and measure one cell; returns its record."""
    import torch
    from datasets import Dataset

    from embedding_distillation import EmbeddingDistillationTrainer, EmbeddingTrainerConfig
    from embedding_distillation.evaluation.encoders import from_sentence_transformer
    from embedding_distillation.evaluation.metrics import evaluate_models
    from embedding_distillation.evaluation.retrieval import local_retrieval_task
    from embedding_distillation.models import load_sentence_transformer
    from embedding_distillation.training.student import prepare_student
    from embedding_distillation.training.tracking import sts_dev_spearman

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    train, heldout = _rows(rows, sts_share)
    dev = Dataset.from_parquet(str(STS_DEV))
    settings = {**BASE, **overrides}
    config = EmbeddingTrainerConfig(
        **{
            "student_model": str(STUDENT),  # a cell may name another (student_type=static)
            "output_dir": str(WORK / "cells" / name),
            "use_bf16": _bf16(),
            "device": "cpu",
            **settings,
        }
    )
    started = time.perf_counter()
    training: dict[str, Any] = {}
    if name.startswith("untrained"):
        model = prepare_student(config, 768, train)  # MiniLM + its head at step 0
    else:
        trainer = EmbeddingDistillationTrainer(config)
        training = trainer.train(train, eval_dataset=heldout, sts_dev=dev)
        assert trainer.model is not None
        model = trainer.model
    train_seconds = time.perf_counter() - started
    model.eval()
    model.to(torch.float32)
    teacher = load_sentence_transformer(str(TEACHER), config.compute)
    models = {
        "teacher": from_sentence_transformer(teacher, TEACHER.name),
        "student_after": from_sentence_transformer(
            model, f"{Path(config.student_model).name}-{name}"
        ),
    }
    retrieval = local_retrieval_task(Dataset.from_parquet(str(RETRIEVAL)))
    metrics, _ = evaluate_models(
        models,
        heldout,
        text_column="text",
        target_column=FINAL,
        gold_pairs=None,
        retrieval=retrieval,
        batch_size=64,
        speed_texts=256,
        cache_dir=CACHE,
        cached=("teacher",),
    )
    after = metrics["student_after"]
    record = {
        "name": name,
        "rows": rows,
        "sts_share": sts_share if rows == DEMO_STS_ROWS else None,
        "settings": settings if not name.startswith("untrained") else overrides,
        "sts_dev": sts_dev_spearman(model, dev, 64),
        # Reported, never used to choose: the same cosine Spearman on the test split.
        "sts_test": sts_dev_spearman(model, Dataset.from_parquet(str(STS_TEST)), 64),
        "retrieval_ndcg_at_10": after["retrieval"]["ndcg_at_10"],
        "teacher_index_ndcg_at_10": after.get("retrieval_teacher_index", {}).get("ndcg_at_10"),
        "teacher_retrieval_ndcg_at_10": metrics["teacher"]["retrieval"]["ndcg_at_10"],
        "heldout_cosine": after["heldout"]["mean_cosine"],
        "train_minutes": train_seconds / 60,
        "kept_step": training.get("kept_step"),
        "global_step": training.get("global_step"),
        "evaluation_seconds": training.get("evaluation_seconds"),
        "evaluations": training.get("evaluations", []),
        "bf16": _bf16(),
    }
    WORK.mkdir(parents=True, exist_ok=True)
    kept = [r for r in _records() if (r["name"], r["rows"]) != (name, rows)]
    RESULTS.write_text("".join(json.dumps(r) + "\n" for r in [*kept, record]), encoding="utf-8")
    return record


def _records() -> list[dict[str, Any]]:
    if not RESULTS.exists():
        return []
    return [json.loads(line) for line in RESULTS.read_text(encoding="utf-8").splitlines() if line]


def table() -> str:
    """The Markdown table of every recorded cell, untrained first."""
    lines = [
        "| cell | rows | settings | STS-B dev | retrieval nDCG@10 | teacher-index nDCG@10 "
        "| held-out cosine | best step: STS-B dev | eval s | minutes | STS-B test |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]

    def order(r: dict[str, Any]) -> tuple[bool, int, bool]:
        return r["rows"] < 0, -r["rows"] if r["rows"] < 0 else r["rows"], r["name"] != "untrained"

    for r in sorted(_records(), key=order):
        changed = {k: v for k, v in r["settings"].items() if BASE.get(k) != v}
        settings = ", ".join(f"{k}={v}" for k, v in changed.items()) or (
            "-" if r["name"] == "untrained" else "base"
        )
        index = r["teacher_index_ndcg_at_10"]
        steps = _best_step(r)
        seconds = f"{r['evaluation_seconds']:.0f}" if r["evaluation_seconds"] else "-"
        rows = {
            0: "demo",
            STS_TRAIN_ROWS: "STS-B train",
            DEMO_STS_ROWS: f"demo, {r.get('sts_share') or 0:.0%} STS-B train",
        }.get(r["rows"], f"{r['rows']:,}")
        lines.append(
            f"| {r['name']} | {rows} | {settings} | {r['sts_dev']:.2f} "
            f"| {r['retrieval_ndcg_at_10']:.2f} | {'n/a' if index is None else f'{index:.2f}'} "
            f"| {r['heldout_cosine']:.4f} | {steps} | {seconds} | {r['train_minutes']:.1f} "
            f"| {_figure(r.get('sts_test'))} |"
        )
    return "\n".join(lines)


def _best_step(record: dict[str, Any]) -> str:
    """'step / steps: STS-B dev' of the best evaluated step (0 = untrained), or '-'."""
    scored = [e for e in record["evaluations"] if e.get("sts_dev") is not None]
    if not scored:
        return "-"
    best = max(scored, key=lambda e: e["sts_dev"])
    return f"{best['step']} / {record['global_step']}: {best['sts_dev']:.2f}"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--rows", type=int, default=30_000, help="-1: the STS-B train sentences")
    c = sub.add_parser("cell")
    c.add_argument("name")
    c.add_argument("settings", nargs="*", help="EmbeddingTrainerConfig key=value")
    c.add_argument(
        "--rows",
        type=int,
        default=30_000,
        help="large-corpus rows; 0: the demo's 2,700; -1: the STS-B train sentences; "
        "-2: the demo's rows mixed with STS-B train sentences (give it before NAME)",
    )
    c.add_argument("--sts-share", type=float, default=0.33, help="--rows -2: the STS-B share")
    sub.add_parser("table")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.rows)
    elif args.command == "cell":
        overrides = dict(item.split("=", 1) for item in args.settings)
        settings = {k: _value(v) for k, v in overrides.items()}
        record = cell(args.name, args.rows, settings, args.sts_share)
        print(json.dumps({k: v for k, v in record.items() if k != "evaluations"}, indent=1))
    else:
        print(table())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
