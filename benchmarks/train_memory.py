"""Training memory versus dataset size: peak RSS on 20,000 and 200,000 rows of stored targets.

Issue 5, item 2: training reads the stored shards memory-mapped, so RAM stays flat as the
dataset grows. Each size is trained in its own child process with the same tiny student
(a 2-layer BERT of width 32 from ``tests/conftest.py``), the same fixed number of optimizer
steps and the same batch size, on shard folders written with ``ShardStore`` (random 768-d
float32 targets, the width of all-mpnet-base-v2, and short synthetic texts). The child runs the
calls ``EmbeddingDistillationTrainer.train`` makes (``load_corpus``, ``check_training_data``,
``prepare_student``, ``train_student``) with ``max_steps`` set, and reports ``ru_maxrss``.

The script prints a Markdown table and writes it to ``benchmarks/RESULTS_train_memory.md``.
The same file is also the child process (``--child SPEC``), so the top level imports only the
standard library (and ``harness.py``'s stdlib helpers).

Usage::

    python benchmarks/train_memory.py [--steps 200] [--threads 1] [--sizes 20000 200000]

The large size is then trained once more inside a Linux memory cgroup capped at 1.2 times the
small size's peak RSS (``--cap-ratio``; page cache counts against the cap): if the growth is
reclaimable page cache, that run completes with the same loss (slower where dropped rows are read
from disk again). The capped run is skipped, with a line saying why, where no memory cgroup can
be created (not root, or no cgroup filesystem).
"""

import argparse
import contextlib
import datetime
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # stdlib-only helpers shared by the benchmarks

ROOT = harness.ROOT
WORK = harness.WORK / "train-memory"
RUNS = WORK / "runs"
RESULTS_FILE = harness.BENCH_DIR / "RESULTS_train_memory.md"
RESULT_PREFIX = harness.RESULT_PREFIX
TARGET_DIM = 768
SHARD_ROWS = 10_000
BATCH_SIZE = 32
TARGET_RATIO = 1.2  # peak RSS, large / small


# --------------------------------------------------------------------------------------------
# Child side: heavy imports happen inside the functions.
# --------------------------------------------------------------------------------------------


def rss_parts_mb() -> dict[str, float]:
    """Current resident memory split into anonymous (heap) and file-backed pages, in MB.

    File-backed pages include the memory-mapped Arrow files: the kernel reads them ahead in large
    blocks and drops them under memory pressure (page cache), unlike the heap.
    """
    parts = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            parts[key] = int(value.split()[0]) / 1024
    return parts


def job_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the tiny student and one shard folder per size (random targets, ShardStore)."""
    import numpy as np
    import pyarrow as pa

    sys.path.insert(0, str(ROOT))
    from embedding_distillation.encoding.shards import ShardStore, embedding_array
    from tests.conftest import build_model, make_sentences

    student = build_model(Path(spec["student_folder"]), hidden=32, layers=2, seed=0)
    for size, folder in zip(spec["sizes"], spec["folders"], strict=True):
        shutil.rmtree(folder, ignore_errors=True)
        store = ShardStore(folder)
        store.begin({"benchmark": "train_memory", "rows": size, "dim": TARGET_DIM})
        rng = np.random.default_rng(size)
        for index, start in enumerate(range(0, size, SHARD_ROWS)):
            rows = min(SHARD_ROWS, size - start)
            targets = rng.standard_normal((rows, TARGET_DIM), dtype=np.float32)
            table = pa.table(
                {
                    "row_id": pa.array(range(start, start + rows), pa.int64()),
                    "text": pa.array(make_sentences(rows, seed=index), pa.string()),
                    "teacher_embedding_final": embedding_array(targets, "float32"),
                }
            )
            store.write_shard(index, table)
        store.finish(num_rows_total=size)
    return {"student": str(student)}


def job_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train the tiny student ``steps`` steps on one shard folder; RSS at each stage."""
    baseline = harness.peak_rss_mb()
    import embedding_distillation.training.trainer as trainer_module
    from embedding_distillation.corpus import load_corpus
    from embedding_distillation.training.config import EmbeddingTrainerConfig
    from embedding_distillation.training.student import check_training_data, prepare_student

    imported = harness.peak_rss_mb()
    arguments = trainer_module.training_arguments

    def fixed_steps(config: Any, num_rows: int) -> Any:
        args = arguments(config, num_rows)
        args.max_steps = spec["steps"]  # the same work for every dataset size
        return args

    trainer_module.training_arguments = fixed_steps
    config = EmbeddingTrainerConfig(
        student_model=spec["student"],
        device="cpu",
        batch_size=BATCH_SIZE,
        num_epochs=1,
        learning_rate=1e-4,
        save_steps=10**9,
        logging_steps=max(1, spec["steps"] // 4),
        output_dir=spec["output"],
    )
    started = time.perf_counter()
    data = load_corpus(spec["shards"])
    loaded = harness.peak_rss_mb()
    loaded_parts = rss_parts_mb()
    seconds_load = time.perf_counter() - started
    target_dim = check_training_data(data, config)
    model = prepare_student(config, target_dim, data)
    prepared = harness.peak_rss_mb()
    started = time.perf_counter()
    metrics = trainer_module.train_student(model, data, config)
    seconds_train = time.perf_counter() - started
    end_parts = rss_parts_mb()
    return {
        "rows": len(data),
        "steps": metrics["global_step"],
        "memory_mapped": bool(data.cache_files),
        "seconds_load": seconds_load,
        "seconds_train": seconds_train,
        "samples_per_second": metrics["train_samples_per_second"],
        "train_loss": metrics["train_loss"],
        "rss_start_mb": baseline,
        "rss_imports_mb": imported,
        "rss_loaded_mb": loaded,
        "rss_prepared_mb": prepared,
        "anon_loaded_mb": loaded_parts["RssAnon"],
        "anon_end_mb": end_parts["RssAnon"],
        "file_end_mb": end_parts["RssFile"],
    }


CHILD_JOBS = {"build": job_build, "train": job_train}


# --------------------------------------------------------------------------------------------
# Parent side.
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def memory_cgroup(limit_mb: int) -> Iterator[Path | None]:
    """A new memory cgroup limited to ``limit_mb`` (cgroup v2, else v1), removed afterwards.

    Yields ``None`` when none can be created here. The limit covers the page cache charged to the
    group, which the kernel reclaims before it kills a process of the group for lack of memory.
    """
    root = Path("/sys/fs/cgroup")
    name = f"train-memory-benchmark-{os.getpid()}"
    if (root / "cgroup.controllers").exists():
        group, limit_file = root / name, "memory.max"
    else:
        group, limit_file = root / "memory" / name, "memory.limit_in_bytes"
    try:
        group.mkdir()
        (group / limit_file).write_text(str(limit_mb * 2**20))
    except OSError as error:
        if group.exists():
            group.rmdir()
        print(f"  no memory cgroup here ({error}): the capped run is skipped", flush=True)
        yield None
        return
    try:
        yield group
    finally:
        group.rmdir()


def cgroup_peak_mb(group: Path) -> float:
    """Peak memory charged to ``group`` (heap and page cache), in MB."""
    for name in ("memory.peak", "memory.max_usage_in_bytes"):
        if (group / name).exists():
            return int((group / name).read_text()) / 2**20
    return float("nan")


def run_child(
    name: str, spec: dict[str, Any], threads: int, cgroup: Path | None = None
) -> dict[str, Any]:
    """Run this file as a child for ``spec``; logs go to ``.work/train-memory/runs/<name>/``.

    With ``cgroup``, the child joins that cgroup before Python starts.
    """
    wrap = None
    if cgroup is not None:
        join = f'echo $$ > {shlex.quote(str(cgroup / "cgroup.procs"))} && exec "$@"'
        wrap = ["sh", "-c", join, "sh"]
    script = Path(__file__).resolve()
    result = harness.run_child(name, spec, threads, script=script, runs=RUNS, wrap=wrap)
    result["cache_bytes"] = harness.bytes_on_disk(RUNS / name / "hf-cache")
    return result


def prepare_assets(sizes: list[int], threads: int) -> tuple[str, list[Path]]:
    """The tiny student and the shard folders, built once under ``.work/train-memory/``."""
    student_folder = WORK / "student"
    folders = [WORK / f"shards-{size}" for size in sizes]
    student = student_folder / "model"
    ready = (student / "modules.json").exists() and all(
        (folder / "manifest.json").exists()
        and json.loads((folder / "manifest.json").read_text()).get("complete")
        for folder in folders
    )
    if not ready:
        spec = {
            "job": "build",
            "student_folder": str(student_folder),
            "sizes": sizes,
            "folders": [str(f) for f in folders],
        }
        run_child("build", spec, threads)
    return str(student), folders


def mb(value: float) -> str:
    """Megabytes with a thousands separator."""
    return f"{value:,.0f}"


def capped_lines(capped: dict[str, Any] | None, large: dict[str, Any], ratio: str) -> list[str]:
    """The paragraph on the run in a memory cgroup."""
    if capped is None:
        return ["No memory cgroup could be created on this machine, so no capped run.", ""]
    cap = f"{capped['cap_mb']:,} MB ({ratio} x the small size's peak RSS)"
    if "error" in capped:
        return [f"**Capped run: FAILED** under a cap of {cap}: {capped['error']}", ""]
    speed = capped["samples_per_second"] / large["samples_per_second"]
    step_ms = 1000 * large["seconds_train"] / large["steps"]
    extra_ms = 1000 * (capped["seconds_train"] - large["seconds_train"]) / capped["steps"]
    return [
        f"**Capped run: completed.** {large['rows']:,} rows again, in a memory cgroup capped at "
        f"{cap}; page cache counts against the cap. Peak RSS {mb(capped['peak_rss_mb'])} MB, "
        f"peak memory charged to the cgroup {mb(capped['cgroup_peak_mb'])} MB, heap at the end "
        f"{mb(capped['anon_end_mb'])} MB, {capped['samples_per_second']:.0f} samples/s "
        f"({speed:.2f} x the uncapped run: rows dropped from the page cache are read from disk "
        f"again, {extra_ms:.0f} ms more per step of {BATCH_SIZE} rows, which shows because a "
        f"step of this tiny student takes {step_ms:.0f} ms), train loss {capped['train_loss']:.4f} "
        f"(uncapped {large['train_loss']:.4f}). The RAM training needs does not grow with the "
        "rows: the kernel reclaims the mapped pages of the Arrow file under the cap.",
        "",
    ]


def results_markdown(
    runs: list[dict[str, Any]], context: dict[str, str], capped: dict[str, Any] | None = None
) -> str:
    """The RESULTS_train_memory.md text."""
    small, large = runs[0], runs[-1]
    ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
    anon_ratio = large["anon_end_mb"] / small["anon_end_mb"]
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    anon_verdict = "PASS" if anon_ratio <= TARGET_RATIO else "FAIL"
    lines = [
        "# Training memory versus dataset size",
        "",
        f"- command: `{context['command']}`",
        f"- date: {context['date']}",
        f"- CPU: {context['cpu']}, load average at start {context['load']}",
        f"- threads: {context['threads']} per child; total runtime {context['runtime']}",
        f"- student: tiny BERT (2 layers, width 32, `tests/conftest.py`), learned projection "
        f"Dense(32 -> {TARGET_DIM}) fitted on 2,048 rows; batch {BATCH_SIZE}, "
        f"{small['steps']} optimizer steps for every size (`max_steps`), MSE loss, device cpu",
        f"- targets: random {TARGET_DIM}-d float32 `teacher_embedding_final` + short synthetic "
        f"texts, written with `ShardStore` in shards of {SHARD_ROWS:,} rows",
        "",
        "Each size runs in its own child process with its own `HF_DATASETS_CACHE`. **RSS** "
        "columns are `ru_maxrss` (peak so far) after the imports, after `load_corpus` (Parquet "
        "shards converted to a memory-mapped Arrow file), after `prepare_student` (model load "
        "and projection fit) and at the end of training (**peak RSS**). **heap** and **mapped "
        "file** split the resident memory at the end of training (`RssAnon`, `RssFile` of "
        "`/proc/self/status`).",
        "",
        "| rows | memory-mapped | Arrow file MB | RSS imports MB | RSS loaded MB | "
        "RSS prepared MB | peak RSS MB | heap at end MB | mapped file at end MB | load s | "
        "train s | samples/s |",
        "|--:|:-:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        lines.append(
            f"| {run['rows']:,} | {'yes' if run['memory_mapped'] else 'no'} "
            f"| {mb(run['cache_bytes'] / 2**20)} | {mb(run['rss_imports_mb'])} "
            f"| {mb(run['rss_loaded_mb'])} | {mb(run['rss_prepared_mb'])} "
            f"| {mb(run['peak_rss_mb'])} | {mb(run['anon_end_mb'])} | {mb(run['file_end_mb'])} "
            f"| {run['seconds_load']:.1f} | {run['seconds_train']:.1f} "
            f"| {run['samples_per_second']:.0f} |"
        )
    lines += [
        "",
        f"**Peak RSS, {large['rows']:,} rows / {small['rows']:,} rows: {ratio:.2f}** "
        f"(target <= {TARGET_RATIO}: {verdict}). **Heap at the end of training: "
        f"{anon_ratio:.2f}** ({anon_verdict}).",
        "",
        "Up to the start of training RSS is flat (the `RSS prepared` column): the targets are "
        "not read into memory. What grows during training is the mapped file: each row a batch "
        "reads maps the pages around it (the kernel's fault-around and read-ahead), and these "
        "pages are already in the page cache because the Arrow file was just written. With a "
        "fixed number of steps the heap does not grow with the rows; the mapped pages grow "
        "towards the size of the Arrow file, are counted in RSS, and are page cache that the "
        "kernel drops under memory pressure instead of the process running out of memory.",
        "",
        *capped_lines(capped, large, context["cap_ratio"]),
    ]
    return "\n".join(lines)


def run_capped(
    runs: list[dict[str, Any]], spec: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any] | None:
    """Train the large size (``spec``) again in a memory cgroup capped at ``cap_ratio`` x the
    small size's peak RSS (``runs[0]``).

    Returns the run with ``cap_mb`` and ``cgroup_peak_mb`` added, ``{"cap_mb": ..., "error":
    ...}`` when the child failed (killed for lack of memory), or ``None`` without a cgroup.
    """
    cap_mb = int(args.cap_ratio * runs[0]["peak_rss_mb"])
    with memory_cgroup(cap_mb) as group:
        if group is None:
            return None
        shutil.rmtree(spec["output"], ignore_errors=True)
        try:
            run = run_child(f"train-{runs[-1]['rows']}-capped", spec, args.threads, group)
        except harness.ChildFailedError as error:
            print(f"    failed under the {cap_mb} MB cap: {error}")
            return {"cap_mb": cap_mb, "error": str(error).splitlines()[0]}
        run.update(cap_mb=cap_mb, cgroup_peak_mb=cgroup_peak_mb(group))
    print(f"    peak RSS {run['peak_rss_mb']:.0f} MB under a {cap_mb} MB cap")
    return run


def run_benchmark(args: argparse.Namespace) -> None:
    """Build the assets, train each size in a child, print and write the results."""
    started = time.perf_counter()
    context = {
        "command": shlex.join(["python", "benchmarks/train_memory.py", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": harness.cpu_model(),
        "load": harness.load_average(),
        "threads": str(args.threads),
        "cap_ratio": f"{args.cap_ratio:g}",
    }
    sizes = sorted(args.sizes)
    print(f"Training memory benchmark: sizes {sizes}, {args.steps} steps, {args.threads} threads")
    student, folders = prepare_assets(sizes, args.threads)
    runs = []
    for size, folder in zip(sizes, folders, strict=True):
        output = WORK / f"output-{size}"
        shutil.rmtree(output, ignore_errors=True)
        spec = {
            "job": "train",
            "student": student,
            "shards": str(folder),
            "steps": args.steps,
            "output": str(output),
        }
        run = run_child(f"train-{size}", spec, args.threads)
        print(f"    peak RSS {run['peak_rss_mb']:.0f} MB, {run['seconds_train']:.1f} s training")
        runs.append(run)
    capped = run_capped(runs, spec, args) if args.cap_ratio else None  # spec: the large size
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    context["runtime"] = f"{int(minutes)} min {seconds:.0f} s"
    text = results_markdown(runs, context, capped)
    print()
    print(text)
    RESULTS_FILE.write_text(text)
    print(f"Written to {RESULTS_FILE.relative_to(ROOT)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="threads per child (default 1)")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        default=[20_000, 200_000],
        help="the two dataset sizes in rows (default 20000 200000)",
    )
    parser.add_argument(
        "--cap-ratio",
        type=float,
        default=TARGET_RATIO,
        help="train the large size again under a memory cap of this x the small size's peak "
        f"RSS (default {TARGET_RATIO}; 0 skips the capped run)",
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
