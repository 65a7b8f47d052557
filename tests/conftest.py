"""Shared fixtures: tiny real sentence-transformers models built in-process, and small corpora.

Nothing here downloads anything: the tokenizer is a WordPiece trained on the fixture sentences
and the models are 2-layer BERTs of width 32/48 with random weights (seeded).
"""

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny models gain nothing from threads, and two test processes on a 2-core machine
# oversubscribe it; subprocesses (kedro run, kill -9 test) inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
import yaml
from datasets import Dataset

WORDS = (
    "the a cat dog bird fish runs sleeps eats flies swims quickly slowly big small red blue green "
    "house tree river city car train music book reads writes paper science data model learns "
    "teacher student embedding vector space sentence word night day sun moon rain snow"
).split()


def training_gradients(model: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    """One training-mode forward + backward (dropout on, fixed seed); the gradients by name."""
    model.train()
    model.zero_grad()
    torch.manual_seed(0)
    features = model.preprocess(texts)
    model(dict(features))["sentence_embedding"].pow(3).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def make_sentences(count: int, seed: int = 0) -> list[str]:
    """Random sentences of 3..24 words over a small vocabulary (varied lengths)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 24))) for _ in range(count)]


def build_tokenizer(folder: Path) -> None:
    """Train a WordPiece tokenizer on the fixture vocabulary and save it as a BERT tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    tokenizer.train_from_iterator([*make_sentences(300), " ".join(WORDS)], trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    fast.save_pretrained(folder)


def build_model(
    folder: Path,
    *,
    hidden: int,
    layers: int = 2,
    dense: int | None = None,
    seed: int = 0,
    architecture: str = "bert",
) -> Path:
    """Save a tiny sentence-transformer: Transformer, Pooling[, Dense], Normalize.

    ``architecture``: ``bert`` or ``mpnet`` (the all-mpnet-base-v2 family's backbone).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    backbone_dir = folder / "backbone"
    build_tokenizer(backbone_dir)
    shape = {
        "vocab_size": 200,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": hidden * 2,
    }
    if architecture == "mpnet":  # positions start after the padding id: room for 64 tokens
        backbone = MPNetModel(MPNetConfig(**shape, max_position_embeddings=66, pad_token_id=0))
    else:
        backbone = BertModel(BertConfig(**shape, max_position_embeddings=64))
    backbone.save_pretrained(backbone_dir)
    transformer = Transformer(str(backbone_dir), max_seq_length=64)
    modules: list[torch.nn.Module] = [transformer, Pooling(hidden, pooling_mode="mean")]
    if dense is not None:
        modules.append(Dense(hidden, dense, activation_function=torch.nn.Tanh()))
    modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    model_dir = folder / "model"
    model.save(str(model_dir))
    return model_dir


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with the tiny models, built once per test session."""
    root = tmp_path_factory.mktemp("models")
    build_model(root / "teacher_dense", hidden=48, dense=40, seed=1)
    build_model(root / "teacher_plain", hidden=48, layers=3, seed=2)
    build_model(root / "student", hidden=32, seed=3)
    build_model(root / "student_dense", hidden=32, dense=40, seed=4)
    return root


@pytest.fixture(scope="session")
def teacher_dense(models_dir: Path) -> str:
    """Teacher with a Dense layer (48 -> 40): pre_dense and final differ in size."""
    return str(models_dir / "teacher_dense" / "model")


@pytest.fixture(scope="session")
def teacher_plain(models_dir: Path) -> str:
    """Teacher without Dense (3 layers, 48-d)."""
    return str(models_dir / "teacher_plain" / "model")


@pytest.fixture(scope="session")
def student(models_dir: Path) -> str:
    """Student without Dense (32-d): needs a projection to meet a 40/48-d target."""
    return str(models_dir / "student" / "model")


@pytest.fixture(scope="session")
def student_dense(models_dir: Path) -> str:
    """Student with a Dense layer (32 -> 40)."""
    return str(models_dir / "student_dense" / "model")


@pytest.fixture(scope="session")
def mpnet_student(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny MPNet sentence-transformer (3 layers, 32-d): the all-mpnet-base-v2 family's shape."""
    folder = tmp_path_factory.mktemp("mpnet")
    return str(build_model(folder, hidden=32, layers=3, seed=5, architecture="mpnet"))


@pytest.fixture
def corpus() -> Dataset:
    """A 50-row corpus with a `text` column and an extra column."""
    texts = make_sentences(50, seed=7)
    return Dataset.from_dict({"text": texts, "source": ["fixture"] * len(texts)})


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep datasets' Arrow cache out of the user's home."""
    import datasets

    cache = tmp_path_factory.getbasetemp() / "hf_datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)


ROOT = Path(__file__).resolve().parents[1]


def make_project_copy(path: Path, *, parameters: dict | None = None) -> Path:
    """Copy the project's conf and pyproject into ``path`` with a 40-row corpus in data/.

    ``parameters`` (e.g. ``{"teacher_embeddings": {"max_samples": 30}}``) is merged into the base
    groups and written as whole groups to ``conf/local/parameters.yml``, the env Kedro runs by
    default, so the override holds whatever the project's parameter merge strategy.
    """
    ignore = shutil.ignore_patterns("credentials.yml")
    shutil.copytree(ROOT / "conf", path / "conf", ignore=ignore, dirs_exist_ok=True)
    (path / "conf" / "base" / "credentials.yml").write_text(
        (ROOT / "conf" / "base" / "credentials.yml").read_text()
    )
    shutil.copy(ROOT / "pyproject.toml", path)
    (path / "src").mkdir(exist_ok=True)  # the package itself is installed (pip install -e .)
    shutil.copy(ROOT / ".telemetry", path)
    corpus_dir = path / "data" / "01_raw" / "corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict({"text": make_sentences(40, seed=3)}).to_parquet(
        str(corpus_dir / "demo_corpus.parquet")
    )
    if parameters:
        base = base_parameters(path / "conf")
        merged = {group: {**base.get(group, {}), **values} for group, values in parameters.items()}
        (path / "conf" / "local" / "parameters.yml").write_text(yaml.safe_dump(merged))
    return path


def base_parameters(conf: Path = ROOT / "conf") -> dict[str, dict]:
    """The parameter groups of ``conf/base``, its ``parameters*.yml`` files merged."""
    merged: dict = {}
    for file in sorted((conf / "base").glob("parameters*.yml")):
        merged |= yaml.safe_load(file.read_text()) or {}
    return merged


def kedro_env() -> dict[str, str]:
    """Environment for a kedro subprocess: offline, no telemetry."""
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}


def run_kedro(project: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m kedro <args>`` in ``project`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        check=False,
        cwd=project,
        env=kedro_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def tiny_project(
    tmp_path_factory: pytest.TempPathFactory, teacher_dense: str, student: str
) -> Path:
    """A project copy configured (conf/local) for the tiny models, after one ``kedro run``.

    As in the demo, the models sit in data/01_raw/models/ and the parameters name them by paths
    relative to the project root. Its data/ holds teacher embeddings, a student model, metrics,
    report and plots, as after a user's first run of the demo.
    """
    path = tmp_path_factory.mktemp("tiny_project")
    models = path / "data" / "01_raw" / "models"
    shutil.copytree(teacher_dense, models / "teacher")
    shutil.copytree(student, models / "student")
    make_project_copy(
        path,
        parameters={
            "compute": {"device": "cpu", "batch_size": 8},
            "teacher_embeddings": {
                "teacher_model": "data/01_raw/models/teacher",
                "max_samples": 30,
                "chunk_size": 10,
            },
            "distillation": {
                "student_model": "data/01_raw/models/student",
                "batch_size": 8,
                "logging_steps": 1,
            },
            "evaluation": {"speed_texts": 8},
        },
    )
    result = run_kedro(path, "run")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return path
