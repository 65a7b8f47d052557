"""GPU benchmark of our encoding engine and trainer, on the GPU anchor's models and corpus.

Run by ``benchmarks/gpu/run.sh`` right after the anchor (``carry/gpu-anchor/anchor_gpu.py``) on
the same machine, so the ratios printed last compare figures from one run. It measures:

- the card's bf16 matmul rate (the anchor's own ``matmul_ceiling``), the ceiling for MFU;
- our engine (``prepare_encoding`` + ``run_encoding`` into a ``ShardStore``, ``output_type=final``)
  on random-weight teachers built by the anchor's own ``build_st`` (EmbeddingGemma-300M-shaped
  with its two Dense layers, mpnet-base-shaped) over the anchor's ``corpus(n)``, in bf16, for a
  few batching settings, with ``use_flash_attention`` (must fall back to sdpa with exactly one
  warning when flash-attn is absent, or for MPNet, which has no flash path) and with
  ``compile_model``;
- one bf16 training epoch of a MiniLM-shaped student (+ Dense 384->768, Normalize) with our
  ``EmbeddingDistillationTrainer`` on the stored mpnet-shaped embeddings.

Per encoding run: texts/s and tokens/s over the manifest's ``seconds`` (the encoding loop:
tokenization, sorting, forward passes, copies to the host and Parquet writes; not the model load
or the weights fingerprint), model TFLOP/s, MFU and peak GPU memory.

Model FLOPs (forward only), per text of ``n`` real tokens (after truncation, no padding):

    2 * P * n + 4 * L * d * n**2 + 2 * H

with P the transformer's non-embedding parameters (every parameter outside ``nn.Embedding``
modules), L its layers, d its hidden size and H the parameters of the modules after Pooling
(Gemma's Dense layers, applied once per text). ``2 * P * n`` counts the weight matmuls,
``4 * L * d * n**2`` the attention scores QK^T and the weighted sum AV (2 FLOPs per multiply-add,
``n * n * d`` multiply-adds each, per layer). MFU = model FLOPs / seconds / measured bf16 matmul
rate. ``tflops_anchor_formula`` repeats the anchor's own estimate (its ``flops_per_token`` at the
mean length), comparable with the ``tflops`` figures in ``anchor.json``.

Results go to ``$OUT/ours.json`` (rewritten after every figure, so a run cut short keeps what it
measured) and ``$OUT/results.md``; a table and the ratio lines against ``$OUT/anchor.json`` are
printed last. The exit status is 1 when any run raised or any hard check failed.

Environment (defaults are the GPU run's):
    OUT                  output folder (default /tmp/out)
    GPU_BENCH_N          texts from corpus(n) (default ANCHOR_N, else 16000)
    GPU_BENCH_DEVICE     cuda | cpu (default cuda)
    GPU_BENCH_DTYPE      bf16 | fp32 (default bf16)
    GPU_BENCH_MODELS     teachers, in order (default gemma,mpnet)
    GPU_BENCH_SETTINGS   names of the settings to run (default: all, see SETTINGS)
    GPU_BENCH_TRAIN_N    training rows (default 16000; 0 skips training)
    GPU_BENCH_CHUNK      chunk_size, rows per shard (default 1000, EncodingConfig's default)
    GPU_BENCH_LAYERS     override the layer count of every model (tiny CPU tests), e.g. 1
    GPU_BENCH_DEADLINE   Unix time after which optional steps are skipped (set by run.sh)
    GPU_BENCH_ANCHOR     folder of the anchor copy (default benchmarks/gpu/carry/gpu-anchor)
    GPU_BENCH_WORK       scratch folder, emptied first (default /tmp/gpu_bench_work)

CPU test: ``GPU_BENCH_DEVICE=cpu GPU_BENCH_N=64 GPU_BENCH_LAYERS=1 GPU_BENCH_MODELS=mpnet
GPU_BENCH_TRAIN_N=64 python benchmarks/gpu/encode_gpu.py`` (with ``src`` importable).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.util
import json
import logging
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from embedding_distillation.attention import model_class, uses_fused_attention
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.encoding.batching import token_lengths
from embedding_distillation.encoding.config import FINAL_COLUMN, EncodingConfig
from embedding_distillation.encoding.engine import ShardEncoder, prepare_encoding, run_encoding
from embedding_distillation.encoding.shards import ShardStore

REPO = Path(__file__).resolve().parents[2]
MODEL_NAMES = ("gemma", "mpnet")
# Minimum seconds left before the deadline to start a step (generous: compile is slow).
MIN_SECONDS = {"plain": 25, "train": 40, "flash": 25, "compile": 150}
MIN_COS_NOTE = 0.98  # below this vs the fp32 reference, print a note (random weights, bf16)


@dataclass(frozen=True)
class Setting:
    """One way of running the engine; settings of the same ``group`` share one loaded model."""

    name: str
    group: str  # plain | flash | compile
    batch_size: int = 128
    max_tokens: int | None = None

    def compute(self, device: str, bf16: bool) -> ComputeConfig:
        return ComputeConfig(
            device=device,  # type: ignore[arg-type]
            use_bf16=bf16,
            batch_size=self.batch_size,
            compile_model=self.group == "compile",
            use_flash_attention=self.group == "flash",
        )


SETTINGS = (
    Setting("b128", "plain", batch_size=128),
    Setting("b512", "plain", batch_size=512),
    Setting("tok16k", "plain", batch_size=512, max_tokens=16384),
    Setting("tok64k", "plain", batch_size=512, max_tokens=65536),
    Setting("tok64k_flash", "flash", batch_size=512, max_tokens=65536),
    Setting("tok64k_compile", "compile", batch_size=512, max_tokens=65536),
)


@dataclass(frozen=True)
class Options:
    """What to run, read from the environment (see the module docstring)."""

    out: Path
    n: int
    device: str
    bf16: bool
    models: tuple[str, ...]
    settings: tuple[Setting, ...]
    train_n: int
    chunk_size: int
    layers: int | None
    deadline: float | None
    anchor_dir: Path
    work: Path

    @classmethod
    def from_env(cls) -> Options:
        env = os.environ.get
        dtype = env("GPU_BENCH_DTYPE", "bf16")
        if dtype not in ("bf16", "fp32"):
            raise SystemExit(f"ERROR: GPU_BENCH_DTYPE must be bf16 or fp32, got {dtype!r}")
        models = tuple(m for m in env("GPU_BENCH_MODELS", ",".join(MODEL_NAMES)).split(",") if m)
        unknown = sorted(set(models) - set(MODEL_NAMES))
        wanted = env("GPU_BENCH_SETTINGS")
        names = [s.name for s in SETTINGS]
        chosen = wanted.split(",") if wanted else names
        unknown += sorted(set(chosen) - set(names))
        if unknown:
            raise SystemExit(
                f"ERROR: unknown model/setting {unknown}; models {MODEL_NAMES}, settings {names}"
            )
        layers = env("GPU_BENCH_LAYERS")
        deadline = env("GPU_BENCH_DEADLINE")
        return cls(
            out=Path(env("OUT", "/tmp/out")),
            n=int(env("GPU_BENCH_N") or env("ANCHOR_N") or 16000),
            device=env("GPU_BENCH_DEVICE", "cuda"),
            bf16=dtype == "bf16",
            models=models,
            settings=tuple(s for s in SETTINGS if s.name in chosen),
            train_n=int(env("GPU_BENCH_TRAIN_N", "16000")),
            chunk_size=int(env("GPU_BENCH_CHUNK", "1000")),
            layers=int(layers) if layers else None,
            deadline=float(deadline) if deadline else None,
            anchor_dir=Path(env("GPU_BENCH_ANCHOR", REPO / "benchmarks/gpu/carry/gpu-anchor")),
            work=Path(env("GPU_BENCH_WORK", "/tmp/gpu_bench_work")),
        )

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def seconds_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()


class Results:
    """Figures by key, written to ``ours.json`` after each one; failed checks and errors."""

    def __init__(self, out: Path) -> None:
        self.path = out / "ours.json"
        self.data: dict[str, Any] = {}
        self.failures: list[str] = []

    def log(self, key: str, value: Any) -> None:
        self.data[key] = value
        print(f"{key}: {json.dumps(value, default=str)}", flush=True)
        self._save()

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"FAIL: {message}", file=sys.stderr, flush=True)
        self.data["failures"] = self.failures
        self._save()

    def _save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1, default=str))


@dataclass
class FlopModel:
    """Forward FLOPs of a sentence-transformers model (formula in the module docstring)."""

    non_embedding_params: int
    layers: int
    d_model: int
    head_params: int

    @classmethod
    def of(cls, model: Any) -> FlopModel:
        from embedding_distillation.models import pooling_index

        auto = model[0].auto_model
        config = auto.config.get_text_config()
        embedding = sum(
            p.numel()
            for m in auto.modules()
            if isinstance(m, torch.nn.Embedding)
            for p in m.parameters(recurse=False)
        )
        total = sum(p.numel() for p in auto.parameters())
        head = sum(
            p.numel() for m in list(model)[pooling_index(model) + 1 :] for p in m.parameters()
        )
        return cls(total - embedding, config.num_hidden_layers, config.hidden_size, head)

    def flops(self, lengths: np.ndarray) -> float:
        n = lengths.astype(np.float64)
        per_text = 2 * self.non_embedding_params * n + 4 * self.layers * self.d_model * n**2
        return float(per_text.sum() + 2 * self.head_params * len(n))


@dataclass
class Teacher:
    """A built teacher and what every run on it is measured against."""

    name: str
    folder: Path  # the saved sentence-transformers model
    reference: np.ndarray  # fp32 final embeddings of the first texts (plain encode)
    lengths: np.ndarray | None = None  # real tokens per text, after truncation
    flop_model: FlopModel | None = None
    anchor_gflop_per_token: float | None = None
    first_final: np.ndarray | None = None  # final embeddings of the first setting run
    stores: dict[str, Path] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        assert self.lengths is not None
        return int(self.lengths.sum())


# ---------------------------------------------------------------------------- the anchor module


def load_anchor(opts: Options) -> ModuleType:
    """Import the copied ``anchor_gpu.py``; point its globals at our device and scratch folder.

    ``build_st`` and ``corpus`` read the module globals ``HERE`` (assets), ``WORK`` (where models
    are saved) and ``DEV``. With ``GPU_BENCH_LAYERS`` set, ``HERE`` points at a copy of the
    assets whose configs have that many layers (tokenizers are links to the originals).
    """
    path = opts.anchor_dir / "anchor_gpu.py"
    if not path.is_file():
        raise SystemExit(f"ERROR: no anchor at {path}; run benchmarks/gpu/prepare.sh first")
    spec = importlib.util.spec_from_file_location("anchor_gpu", path)
    assert spec is not None and spec.loader is not None
    anchor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor)
    anchor.WORK = str(opts.work / "models")
    anchor.DEV = opts.device
    os.makedirs(anchor.WORK, exist_ok=True)
    if opts.layers is not None:
        anchor.HERE = str(shallow_assets(opts.anchor_dir, opts.work / "shallow", opts.layers))
    return anchor


def shallow_assets(anchor_dir: Path, dest: Path, layers: int) -> Path:
    """A copy of ``assets/`` whose model configs have ``layers`` layers (for CPU tests)."""
    for src in sorted((anchor_dir / "assets").iterdir()):
        out = dest / "assets" / src.name
        out.mkdir(parents=True, exist_ok=True)
        for file in src.iterdir():
            if file.name != "config.json":
                (out / file.name).symlink_to(file.resolve())
        config = json.loads((src / "config.json").read_text())
        config["num_hidden_layers"] = layers
        if "layer_types" in config:
            config["layer_types"] = config["layer_types"][:layers]
        (out / "config.json").write_text(json.dumps(config, indent=1))
    return dest


def matmul_tflops(anchor: ModuleType, opts: Options) -> float:
    """The card's matmul rate: the anchor's ``matmul_ceiling`` (bf16, 8192^3) on CUDA.

    On CPU (tests only) a small product in the run's dtype, so the MFU code runs too.
    """
    if opts.cuda:
        if not opts.bf16:
            print("NOTE: the ceiling is the bf16 matmul rate; this run is fp32", flush=True)
        return float(anchor.matmul_ceiling())
    dtype = torch.bfloat16 if opts.bf16 else torch.float32
    a, b = torch.randn(512, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    return 2 * 512**3 * 5 / (time.perf_counter() - start) / 1e12


# ---------------------------------------------------------------------------- teachers


def build_teacher(anchor: ModuleType, name: str, texts: list[str]) -> Teacher:
    """Random-weight teacher from the anchor's ``build_st``, plus fp32 reference embeddings."""
    st, folder = anchor.build_st(name)
    reference = st.encode(texts[:256], batch_size=64, convert_to_numpy=True)
    del st
    free_memory()
    return Teacher(name, Path(folder), np.asarray(reference, dtype=np.float32))


def measure_teacher(
    run: ShardEncoder, teacher: Teacher, anchor: ModuleType, texts: list[str]
) -> dict[str, Any]:
    """Token lengths (the tokenizer's, truncated as the teacher truncates) and FLOP models."""
    encoder = run.teacher()
    start = time.perf_counter()
    full = token_lengths(encoder, texts)
    seconds = time.perf_counter() - start
    teacher.lengths = np.minimum(full, encoder.max_seq_length)
    teacher.flop_model = FlopModel.of(encoder.model)
    config = encoder.model[0].auto_model.config.get_text_config()
    mean = teacher.tokens / len(texts)
    teacher.anchor_gflop_per_token = anchor.flops_per_token(config, mean) / 1e9
    return {
        "total": teacher.tokens,
        "mean": round(mean, 1),
        "max": int(teacher.lengths.max()),
        "truncated_texts": int((full > encoder.max_seq_length).sum()),
        "token_lengths_s": round(seconds, 2),
        "token_lengths_tok_per_s": round(int(full.sum()) / seconds),
        "flop_model": dataclasses.asdict(teacher.flop_model),
        "gflop_per_text_mean": round(
            teacher.flop_model.flops(teacher.lengths) / len(texts) / 1e9, 3
        ),
        "anchor_gflop_per_token": round(teacher.anchor_gflop_per_token, 3),
    }


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- encoding runs


class WarningCounter(logging.Handler):
    """Counts WARNING records of one logger while attached."""

    def __init__(self, logger_name: str) -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger_name)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> WarningCounter:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


def load_job(
    teacher: Teacher, setting: Setting, corpus: Any, opts: Options, results: Results
) -> ShardEncoder:
    """Prepare the job and load the teacher; for ``flash``, check the sdpa fallback's warning."""
    config = EncodingConfig(
        teacher_model=str(teacher.folder),
        output_type="final",
        chunk_size=opts.chunk_size,
        max_tokens_per_batch=setting.max_tokens,
    )
    run = ShardEncoder(prepare_encoding(corpus, config, setting.compute(opts.device, opts.bf16)))
    start = time.perf_counter()
    with WarningCounter("embedding_distillation.attention") as warnings:
        encoder = run.teacher()
    attn = encoder.model[0].auto_model.config._attn_implementation
    info = {
        "load_s": round(time.perf_counter() - start, 2),
        "attn_implementation": attn,
        # MPNet: transformers says "eager"; these modules run through sdpa (attention.py)
        "fused_attention_modules": sum(map(uses_fused_attention, encoder.model.modules())),
    }
    if setting.group == "flash":
        from transformers.utils import is_flash_attn_2_available

        info["flash_attn_installed"] = is_flash_attn_2_available()
        info["fallback_warnings"] = len(warnings.messages)
        supported = getattr(model_class(str(teacher.folder)), "_supports_flash_attn", True)
        expected = 0 if info["flash_attn_installed"] and opts.cuda and supported else 1
        if len(warnings.messages) != expected:
            results.fail(
                f"{teacher.name}: use_flash_attention logged {len(warnings.messages)} warnings, "
                f"expected {expected}: {warnings.messages}"
            )
        if expected and attn not in ("sdpa", "eager"):
            results.fail(f"{teacher.name}: flash fallback gave attention {attn!r}")
    results.log(f"{teacher.name}.{setting.group}.load", info)
    return run


def run_group(
    teacher: Teacher,
    settings: list[Setting],
    corpus: Any,
    texts: list[str],
    anchor: ModuleType,
    opts: Options,
    results: Results,
) -> None:
    """Load the teacher once for ``settings`` (one group), warm up, then time each setting."""
    group = settings[0].group
    run = load_job(teacher, settings[0], corpus, opts, results)
    if teacher.lengths is None:
        results.log(f"{teacher.name}.tokens", measure_teacher(run, teacher, anchor, texts))
    warm_up(run, teacher, group, texts, opts, results)
    if group == "plain":
        results.log(
            f"{teacher.name}.st_encode_b128_here", plain_encode(run, teacher, anchor, texts)
        )
    for setting in settings:
        key = f"{teacher.name}.{setting.name}"
        if opts.seconds_left() < 10:
            results.log(f"{key}.skipped", "deadline")
            continue
        try:
            results.log(
                key, run_setting(batched_as(run, setting, opts), teacher, setting, opts, results)
            )
        except Exception as e:
            report_error(results, key, e)
    del run
    free_memory()
    if group == "compile":
        torch._dynamo.reset()


def batched_as(run: ShardEncoder, setting: Setting, opts: Options) -> ShardEncoder:
    """The same job and loaded teacher, batched as ``setting`` says (no reload).

    The frozen job is copied with the new batching options, and the new run gets the loaded
    teacher; the identity holds no batching option, so it stays the same.
    """
    job = dataclasses.replace(
        run.job,
        config=dataclasses.replace(run.job.config, max_tokens_per_batch=setting.max_tokens),
        compute=setting.compute(opts.device, opts.bf16),
    )
    return ShardEncoder(job, teacher=run.teacher())


def warm_up(
    run: ShardEncoder,
    teacher: Teacher,
    group: str,
    texts: list[str],
    opts: Options,
    results: Results,
) -> None:
    """Encode the first 2048 texts once (kernels, allocator; compilation for ``compile``).

    For ``compile``, fail when TorchDynamo traced no frame: ``compile_model`` then did nothing.
    """
    from torch._dynamo.utils import counters

    frames_before = counters["frames"]["total"]
    start = time.perf_counter()
    run.encode_texts(texts[: min(len(texts), 2048)])
    sync(opts)
    info: dict[str, Any] = {"seconds": round(time.perf_counter() - start, 2)}
    if group == "compile":
        info["dynamo_frames"] = counters["frames"]["total"] - frames_before
        if not info["dynamo_frames"]:
            results.fail(
                f"{teacher.name}: compile_model=True but TorchDynamo traced nothing during the "
                "warm-up: the model runs uncompiled"
            )
    results.log(f"{teacher.name}.{group}.warmup", info)


def plain_encode(
    run: ShardEncoder, teacher: Teacher, anchor: ModuleType, texts: list[str]
) -> dict[str, Any]:
    """``SentenceTransformer.encode`` at batch 128 on the same loaded model, in this process.

    The anchor's figure comes from the image's sentence-transformers/transformers; this one from
    ours, so (ours / this) isolates the engine from library versions. Timed by the anchor's own
    ``timed_encode`` after its warm-up on 1024 texts. The same model means the same attention:
    for MPNet, the sdpa attention of ``attention.py``; MPNet is then timed once more with
    transformers' eager attention (``eager_tok_per_s``), the A/B of that choice on this card.
    """
    model = run.teacher().model
    assert teacher.lengths is not None

    def tokens_per_second() -> tuple[float, int]:
        anchor.timed_encode(model, texts[:1024], 128)
        seconds = anchor.timed_encode(model, texts, 128)
        return seconds, round(teacher.tokens / seconds)

    seconds, tok_per_s = tokens_per_second()
    result: dict[str, Any] = {
        "texts_per_s": round(len(texts) / seconds),
        "tok_per_s": tok_per_s,
        "seconds": round(seconds, 3),
    }
    with eager_attention(model) as switched:
        if switched:
            result["eager_tok_per_s"] = tokens_per_second()[1]
    return result


@contextlib.contextmanager
def eager_attention(model: torch.nn.Module) -> Iterator[int]:
    """transformers' own (eager) attention while inside: the sdpa forwards taken off MPNet."""
    fused = [module for module in model.modules() if uses_fused_attention(module)]
    forwards = [module.__dict__.pop("forward") for module in fused]
    try:
        yield len(fused)
    finally:
        for module, forward in zip(fused, forwards, strict=True):
            module.forward = forward


def run_setting(
    run: ShardEncoder, teacher: Teacher, setting: Setting, opts: Options, results: Results
) -> dict[str, Any]:
    """One timed ``run_encoding`` into a fresh shard folder, then checks of what it wrote."""
    store = ShardStore(opts.work / "stores" / f"{teacher.name}-{setting.name}")
    shutil.rmtree(store.folder, ignore_errors=True)
    if opts.cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    run_encoding(run.job, store, encoder=run)
    sync(opts)
    wall = time.perf_counter() - start
    manifest = store.manifest()
    assert manifest is not None and manifest["complete"], f"{store.folder} is not complete"
    seconds = float(manifest["seconds"])
    metrics = throughput(teacher, seconds, results.data.get("matmul_tflops"))
    metrics.update(
        seconds=round(seconds, 3),
        wall_s=round(wall, 2),
        manifest_tok_per_s=manifest["tokens_per_second"],
        peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2) if opts.cuda else None,
    )
    metrics.update(check_store(store, teacher, setting, opts, results))
    manifest_tokens = float(manifest["tokens_per_second"]) * seconds
    if abs(manifest_tokens - teacher.tokens) > 0.01 * teacher.tokens + 1:
        results.fail(
            f"{teacher.name}.{setting.name}: manifest counts {manifest_tokens:.0f} tokens, "
            f"the tokenizer {teacher.tokens}"
        )
    teacher.stores[setting.name] = store.folder
    return metrics


def throughput(teacher: Teacher, seconds: float, ceiling_tflops: float | None) -> dict[str, Any]:
    """texts/s, tokens/s, model TFLOP/s and MFU for one pass over the corpus."""
    assert teacher.lengths is not None and teacher.flop_model is not None
    assert teacher.anchor_gflop_per_token is not None
    tok_per_s = teacher.tokens / seconds
    tflops = teacher.flop_model.flops(teacher.lengths) / seconds / 1e12
    return {
        "texts_per_s": round(len(teacher.lengths) / seconds),
        "tok_per_s": round(tok_per_s),
        "tflops": round(tflops, 1),
        "mfu": round(tflops / ceiling_tflops, 4) if ceiling_tflops else None,
        "tflops_anchor_formula": round(tok_per_s * teacher.anchor_gflop_per_token / 1e3, 1),
    }


def check_store(
    store: ShardStore, teacher: Teacher, setting: Setting, opts: Options, results: Results
) -> dict[str, Any]:
    """Rows, finiteness and agreement of the stored final embeddings (vs fp32 and other runs)."""
    table = pa.concat_tables(pq.read_table(path) for path in store.files())
    column = table.column(FINAL_COLUMN).combine_chunks()
    final = column.flatten().to_numpy().reshape(len(table), -1)
    key = f"{teacher.name}.{setting.name}"
    assert teacher.lengths is not None
    row_ids = table.column("row_id").to_numpy()
    if len(table) != len(teacher.lengths) or not np.array_equal(row_ids, np.arange(len(table))):
        results.fail(f"{key}: {len(table)} rows or row order differ from the corpus")
    if not np.isfinite(final).all():
        results.fail(f"{key}: non-finite values in {FINAL_COLUMN}")
    checks = {
        "min_cos_vs_fp32": round(min_cosine(final[: len(teacher.reference)], teacher.reference), 4)
    }
    if teacher.first_final is None:
        teacher.first_final = final
    else:
        checks["min_cos_vs_first_setting"] = round(min_cosine(final, teacher.first_final), 4)
    if checks["min_cos_vs_fp32"] < MIN_COS_NOTE:
        print(f"NOTE: {key}: cosine vs fp32 plain encode down to {checks['min_cos_vs_fp32']}")
    return checks


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return float(((a64 * b64).sum(1) / np.maximum(norms, 1e-12)).min())


def sync(opts: Options) -> None:
    if opts.cuda:
        torch.cuda.synchronize()


def report_error(results: Results, key: str, error: BaseException) -> None:
    tail = "".join(traceback.format_exception(error))[-2500:]
    print(tail, file=sys.stderr, flush=True)
    results.log(f"{key}.error", repr(error)[:800])
    results.fail(f"{key}: {error!r}"[:300])


# ---------------------------------------------------------------------------- training


def build_student(anchor: ModuleType) -> Path:
    """The anchor's distil-trainer student: random MiniLM + mean Pooling + Dense(384->768)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )

    st, _ = anchor.build_st("minilm")  # saves the random MiniLM weights to <WORK>/minilm_hf
    del st
    hf_dir = Path(anchor.WORK) / "minilm_hf"
    modules = [
        Transformer(str(hf_dir), max_seq_length=256),
        Pooling(384, pooling_mode="mean"),
        Dense(384, 768, activation_function=torch.nn.Identity()),
        Normalize(),
    ]
    student_dir = Path(anchor.WORK) / "minilm_student"
    SentenceTransformer(modules=modules, device="cpu").save(str(student_dir))
    return student_dir


def bench_training(anchor: ModuleType, teacher: Teacher, opts: Options) -> dict[str, Any]:
    """One bf16 epoch of our trainer on the teacher's stored final embeddings."""
    from embedding_distillation.api import EmbeddingDistillationTrainer
    from embedding_distillation.training.config import EmbeddingTrainerConfig

    store = ShardStore(next(iter(teacher.stores.values())))
    data = store.load()
    rows = min(opts.train_n, len(data))
    data = data.select(range(rows))
    config = EmbeddingTrainerConfig(
        student_model=str(build_student(anchor)),
        target_type="final",
        num_epochs=1,
        batch_size=64,
        use_bf16=opts.bf16,
        device=opts.device,
        save_steps=10**9,
        logging_steps=10**9,
        output_dir=str(opts.work / "student_out"),
    )
    sync(opts)
    start = time.perf_counter()
    metrics = EmbeddingDistillationTrainer(config).train(data)
    sync(opts)
    seconds = time.perf_counter() - start
    return {
        "teacher": teacher.name,
        "store": store.folder.name,
        "rows": rows,
        "batch_size": 64,
        "samples_per_s": round(rows / seconds, 1),
        "seconds": round(seconds, 2),
        "hf_train_samples_per_s": round(metrics["train_samples_per_second"], 1),
        "hf_train_runtime_s": round(metrics["train_runtime"], 2),
        "loss": metrics["train_loss"],
    }


# ---------------------------------------------------------------------------- report


def table_lines(results: Results, opts: Options) -> list[str]:
    """A Markdown table of every encoding run."""
    header = "| model | setting | texts/s | tok/s | TFLOP/s | MFU | peak GiB | s | cos fp32 |"
    lines = [header, "|" + "---|" * 9]
    for name in opts.models:
        for setting in opts.settings:
            row = results.data.get(f"{name}.{setting.name}")
            if not isinstance(row, dict):
                errors = (f"{name}.{setting.name}.error", f"{name}.{setting.group}.error")
                status = "error" if any(k in results.data for k in errors) else "skipped"
                lines.append(f"| {name} | {setting.name} | {status} |||||||")
                continue
            mfu = f"{row['mfu']:.1%}" if row.get("mfu") is not None else "-"
            lines.append(
                f"| {name} | {setting.name} | {row['texts_per_s']:,} | {row['tok_per_s']:,} | "
                f"{row['tflops']} | {mfu} | {row.get('peak_gib') or '-'} | {row['seconds']} | "
                f"{row['min_cos_vs_fp32']} |"
            )
    train = results.data.get("train")
    if isinstance(train, dict):
        lines.append("")
        lines.append(
            f"Training (ours, {train['rows']} rows, batch 64, one epoch on {train['teacher']} "
            f"embeddings): {train['samples_per_s']} samples/s ({train['seconds']} s)"
        )
    return lines


def best_run(results: Results, name: str) -> tuple[str, dict[str, Any]] | None:
    runs = [
        (s.name, results.data[f"{name}.{s.name}"])
        for s in SETTINGS
        if isinstance(results.data.get(f"{name}.{s.name}"), dict)
    ]
    return max(runs, key=lambda run: run[1]["tok_per_s"]) if runs else None


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def ratio_lines(results: Results, anchor_json: Path, opts: Options) -> list[str]:
    """Ours against the anchor's figures of the same run (``anchor.json``)."""
    if not anchor_json.is_file():
        return [f"no {anchor_json}: no ratios (run the anchor first, as run.sh does)"]
    anchor = json.loads(anchor_json.read_text())
    lines = [f"anchor env: {json.dumps(anchor.get('env'))}"]
    if anchor.get("env", {}).get("n") != opts.n:
        lines.append(f"NOTE: anchor n={anchor.get('env', {}).get('n')} but ours n={opts.n}")
    if "bf16_matmul_tflops" in anchor:
        lines.append(
            f"bf16 matmul: anchor {anchor['bf16_matmul_tflops']} TFLOP/s, "
            f"ours {results.data.get('matmul_tflops')}"
        )
    for key, value in anchor.items():
        if key.endswith("error"):
            lines.append(f"ANCHOR {key}: {str(value)[:300]}")
    for name in opts.models:
        lines += model_ratio_lines(results, anchor, name)
    lines += training_ratio_lines(results, anchor)
    return lines


def model_ratio_lines(results: Results, anchor: dict[str, Any], name: str) -> list[str]:
    best = best_run(results, name)
    if best is None:
        return [f"{name}: no completed run of ours"]
    setting, ours = best
    lines = []
    ours_tokens = results.data.get(f"{name}.tokens", {}).get("total")
    anchor_tokens = anchor.get(f"{name}.tokens", {}).get("total")
    if ours_tokens != anchor_tokens:
        lines.append(f"NOTE {name}: tokens ours {ours_tokens} vs anchor {anchor_tokens}")
    plain = {
        key: anchor[f"{name}.{key}"]["tok_per_s"]
        for key in ("st_bf16_b128", "st_bf16_b512")
        if f"{name}.{key}" in anchor
    }
    if plain:
        key, tok = max(plain.items(), key=lambda item: item[1])
        ratio = ours["tok_per_s"] / tok
        lines.append(
            f"{name}: ours {ours['tok_per_s']:,} tok/s ({setting}) vs plain ST {key} {tok:,} = "
            f"{ratio:.2f}x (target >= 1.3x: {verdict(ratio >= 1.3)})"
        )
        for bs in (128, 512):
            mine = results.data.get(f"{name}.b{bs}")
            theirs = plain.get(f"st_bf16_b{bs}")
            if isinstance(mine, dict) and theirs:
                lines.append(
                    f"{name}: like for like batch {bs}: ours {mine['tok_per_s']:,} vs "
                    f"{theirs:,} = {mine['tok_per_s'] / theirs:.2f}x"
                )
    else:
        lines.append(f"{name}: anchor has no st_bf16 figures")
    here = results.data.get(f"{name}.st_encode_b128_here")
    if isinstance(here, dict):
        ratio = ours["tok_per_s"] / here["tok_per_s"]
        lines.append(
            f"{name}: ours {ours['tok_per_s']:,} tok/s vs plain ST encode b128 in our process "
            f"(our library versions) {here['tok_per_s']:,} = {ratio:.2f}x"
        )
        if here.get("eager_tok_per_s"):
            lines.append(
                f"{name}: plain ST encode b128 here, sdpa attention (attention.py) "
                f"{here['tok_per_s']:,} vs transformers' eager {here['eager_tok_per_s']:,} tok/s "
                f"= {here['tok_per_s'] / here['eager_tok_per_s']:.2f}x"
            )
    if ours.get("mfu") is not None:
        anchor_mfu = ""
        if plain and "bf16_matmul_tflops" in anchor:
            tflops = anchor[f"{name}.{key}"]["tflops"]
            anchor_mfu = (
                f"; anchor {key}: {tflops / anchor['bf16_matmul_tflops']:.1%} (its formula)"
            )
        lines.append(
            f"{name}: ours MFU {ours['mfu']:.1%} ({setting}, {ours['tflops']} TFLOP/s; "
            f"{ours['tflops_anchor_formula']} by the anchor's formula) (target >= 40%: "
            f"{verdict(ours['mfu'] >= 0.4)}){anchor_mfu}"
        )
    for kind in ("final", "pre_dense"):
        dt = anchor.get(f"{name}.distil_trainer_{kind}_bf16_b128")
        if dt:
            lines.append(
                f"{name}: ours final {ours['tok_per_s']:,} tok/s vs distil-trainer {kind} "
                f"{dt['tok_per_s']:,} = {ours['tok_per_s'] / dt['tok_per_s']:.2f}x"
            )
    return lines


def training_ratio_lines(results: Results, anchor: dict[str, Any]) -> list[str]:
    ours = results.data.get("train")
    if not isinstance(ours, dict):
        return ["training: no run of ours"]
    dt = anchor.get(f"{ours['teacher']}.distil_trainer_train_minilm_b64")
    if not dt:
        return [f"training: anchor has no {ours['teacher']}.distil_trainer_train_minilm_b64"]
    return [
        f"training ({ours['teacher']} targets, MiniLM+Dense, b64, 1 epoch): ours "
        f"{ours['samples_per_s']} samples/s vs distil-trainer {dt['samples_per_s']} = "
        f"{ours['samples_per_s'] / dt['samples_per_s']:.2f}x"
    ]


# ---------------------------------------------------------------------------- main


def environment(opts: Options) -> dict[str, Any]:
    import datasets
    import huggingface_hub
    import sentence_transformers
    import transformers

    return {
        "device": torch.cuda.get_device_name() if opts.cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "datasets": datasets.__version__,
        "huggingface_hub": huggingface_hub.__version__,
        "n": opts.n,
        "dtype": "bf16" if opts.bf16 else "fp32",
        "models": list(opts.models),
        "settings": [s.name for s in opts.settings],
        "chunk_size": opts.chunk_size,
        "layers_override": opts.layers,
    }


def step_allowed(opts: Options, results: Results, key: str, group: str) -> bool:
    """False (and a note in the results) when the deadline leaves too little time for a step."""
    left = opts.seconds_left()
    if left >= MIN_SECONDS[group]:
        return True
    results.log(f"{key}.skipped", f"{left:.0f} s left, {MIN_SECONDS[group]} s needed")
    return False


def run_all(opts: Options, results: Results) -> None:
    """Matmul ceiling, teachers, the plain group, training, then the flash and compile groups."""
    from datasets import Dataset

    anchor = load_anchor(opts)
    results.log("env", environment(opts))
    results.log("matmul_tflops", round(matmul_tflops(anchor, opts), 1))
    texts = anchor.corpus(opts.n)
    corpus = Dataset.from_dict({"text": texts})
    teachers: dict[str, Teacher] = {}
    groups = ("plain", "train", "flash", "compile")
    for group in groups:
        if group == "train":
            run_training(anchor, teachers, opts, results)
            continue
        settings = [s for s in opts.settings if s.group == group]
        for name in opts.models if settings else ():
            key = f"{name}.{group}"
            if not step_allowed(opts, results, key, group):
                continue
            try:
                if name not in teachers:
                    teachers[name] = build_teacher(anchor, name, texts)
                run_group(teachers[name], settings, corpus, texts, anchor, opts, results)
            except Exception as e:
                report_error(results, key, e)
                free_memory()


def run_training(
    anchor: ModuleType, teachers: dict[str, Teacher], opts: Options, results: Results
) -> None:
    """Train on mpnet's stored embeddings (else the first teacher with any)."""
    if opts.train_n <= 0:
        return
    order = sorted(teachers.values(), key=lambda t: t.name != "mpnet")
    teacher = next((t for t in order if t.stores), None)
    if teacher is None:
        results.fail("train: no stored teacher embeddings to train on")
        return
    if step_allowed(opts, results, "train", "train"):
        try:
            results.log("train", bench_training(anchor, teacher, opts))
        except Exception as e:
            report_error(results, "train", e)
        free_memory()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    opts = Options.from_env()
    if opts.cuda and not torch.cuda.is_available():
        raise SystemExit(f"ERROR: GPU_BENCH_DEVICE=cuda but torch {torch.__version__} sees no GPU")
    opts.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(opts.work, ignore_errors=True)
    opts.work.mkdir(parents=True)
    results = Results(opts.out)
    try:
        run_all(opts, results)
    except Exception as e:
        report_error(results, "run", e)
    finally:
        ratios = ratio_lines(results, opts.out / "anchor.json", opts)
        report = [*table_lines(results, opts), "", *ratios]
        (opts.out / "results.md").write_text("\n".join(report) + "\n")
        print("\n==== ours (benchmarks/gpu/encode_gpu.py) ====")
        print("\n".join(report))
    if results.failures:
        print(f"\nFAILED: {len(results.failures)} problem(s):", *results.failures, sep="\n  ")
        return 1
    skipped = [key for key in results.data if key.endswith(".skipped")]
    if skipped:
        print(f"\nOK, but {len(skipped)} step(s) skipped for time: {', '.join(skipped)}")
    else:
        print("\nOK: every run completed and every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
