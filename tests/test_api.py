"""The seed's Python API: TeacherEmbeddingsGenerator and EmbeddingDistillationTrainer."""

import dataclasses
import inspect
import json
import re
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation import (
    EmbeddingDistillationTrainer,
    EmbeddingTrainerConfig,
    TeacherEmbeddingsGenerator,
    distill_students,
)
from embedding_distillation.evaluation import run as evaluation_run
from embedding_distillation.evaluation.config import EvaluationConfig
from tests.conftest import make_sentences
from tests.spies import crash_at, record_encoded

FINAL = "teacher_embedding_final"
PRE_DENSE = "teacher_embedding_pre_dense"


def _generator(teacher: str, **kwargs) -> TeacherEmbeddingsGenerator:
    return TeacherEmbeddingsGenerator(teacher, device="cpu", batch_size=8, **kwargs)


def _config(student: str, output_dir: Path, **kwargs) -> EmbeddingTrainerConfig:
    options = {"num_epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "device": "cpu"}
    return EmbeddingTrainerConfig(
        student_model=student, output_dir=str(output_dir), **options | kwargs
    )


def _array(dataset: Dataset, column: str) -> np.ndarray:
    return np.asarray(dataset.with_format("numpy")[column], dtype=np.float32)


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to load model weights fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("model weights were loaded before the error")

    monkeypatch.setattr("embedding_distillation.encoding.engine.load_sentence_transformer", refuse)
    monkeypatch.setattr("embedding_distillation.training.student.load_sentence_transformer", refuse)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, teacher_dense: str) -> tuple[Dataset, Path]:
    """24 rows encoded by teacher_dense (final + pre_dense) and the shard folder holding them."""
    folder = tmp_path_factory.mktemp("embedded") / "shards"
    corpus = Dataset.from_dict({"text": make_sentences(24, seed=11)})
    with pytest.MonkeyPatch.context() as patch:  # runs before the per-test cache isolation
        cache = tmp_path_factory.getbasetemp() / "hf_datasets_cache"
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
        return _generator(teacher_dense).generate(corpus, output_dir=folder), folder


# --- Signatures and defaults (the seed's tables) ---------------------------------------------


def test_generator_constructor_matches_the_seed():
    parameters = inspect.signature(TeacherEmbeddingsGenerator).parameters
    seed = {
        "teacher_model": inspect.Parameter.empty,
        "device": "auto",
        "batch_size": 32,
        "use_fp16": False,
        "use_bf16": False,
        "compile_model": False,
        "use_flash_attention": False,
    }
    assert list(parameters)[: len(seed)] == list(seed)
    assert {name: parameters[name].default for name in seed} == seed


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        (
            "generate",
            {
                "source_dataset": inspect.Parameter.empty,
                "text_column": "text",
                "output_type": "final",
                "layer_indices": None,
            },
        ),
        (
            "generate_and_push",
            {
                "source_dataset": inspect.Parameter.empty,
                "repo_id": None,
                "text_column": "text",
                "output_type": "final",
                "layer_indices": None,
                "token": None,
            },
        ),
    ],
)
def test_generate_methods_take_the_seed_arguments(method, expected):
    parameters = inspect.signature(getattr(TeacherEmbeddingsGenerator, method)).parameters
    assert {name: parameters[name].default for name in expected} == expected
    if method == "generate_and_push":
        assert isinstance(parameters["push_every"].default, int)


SEED_TRAINER_DEFAULTS = {
    "target_type": "final",
    "learning_rate": 2e-5,
    "num_epochs": 3,
    "batch_size": 32,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "loss_type": "mse",
    "text_column": "text",
    "final_embedding_column": "teacher_embedding_final",
    "pre_dense_embedding_column": "teacher_embedding_pre_dense",
    "output_dir": "./trained_model",
    "save_steps": 1000,
    "logging_steps": 100,
    "push_to_hub": False,
    "hub_model_id": None,
    "hub_token": None,
    "use_fp16": False,
    "use_bf16": False,
    "compile_model": False,
    "use_flash_attention": False,
    "gradient_checkpointing": False,
}


def test_trainer_config_has_every_seed_field_with_its_default():
    fields = {f.name: f for f in dataclasses.fields(EmbeddingTrainerConfig)}
    assert fields["student_model"].default is dataclasses.MISSING
    assert {name: fields[name].default for name in SEED_TRAINER_DEFAULTS} == SEED_TRAINER_DEFAULTS
    config = EmbeddingTrainerConfig(student_model="org/student")
    assert {name: getattr(config, name) for name in SEED_TRAINER_DEFAULTS} == SEED_TRAINER_DEFAULTS


def test_trainer_takes_the_config():
    config = EmbeddingTrainerConfig(student_model="org/student")
    trainer = EmbeddingDistillationTrainer(config)
    assert trainer.config is config
    assert trainer.model is None


# --- generate ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_type", "layer_indices", "columns", "sizes"),
    [
        ("final", None, ["text", FINAL, PRE_DENSE], [40, 48]),
        ("pre_dense", None, ["text", PRE_DENSE], [48]),
        (
            "hidden_states",
            [0, 2],
            ["text", "hidden_state_layer_0", "hidden_state_layer_2"],
            [48, 48],
        ),
        ("hidden_states", 2, ["text", "hidden_state_layer_2"], [48]),  # one layer as a number
        (
            "hidden_states",
            None,
            ["text", "hidden_state_layer_0", "hidden_state_layer_1", "hidden_state_layer_2"],
            [48, 48, 48],
        ),
    ],
)
def test_generate_returns_the_documented_columns(
    tmp_path, corpus, teacher_dense, output_type, layer_indices, columns, sizes
):
    result = _generator(teacher_dense).generate(
        corpus, output_type=output_type, layer_indices=layer_indices, output_dir=tmp_path / "out"
    )
    assert result.column_names == columns
    assert result.num_rows == 50
    assert result["text"] == corpus["text"]
    assert [_array(result, c).shape for c in columns[1:]] == [(50, size) for size in sizes]


def test_generate_values_match_the_teacher(tmp_path, corpus, teacher_dense):
    result = _generator(teacher_dense).generate(corpus, output_dir=tmp_path / "out")
    teacher = SentenceTransformer(teacher_dense, device="cpu")
    final = teacher.encode(corpus["text"], convert_to_numpy=True)
    pooled = SentenceTransformer(modules=[teacher[0], teacher[1]], device="cpu").encode(
        corpus["text"], convert_to_numpy=True
    )
    np.testing.assert_allclose(_array(result, FINAL), final, atol=1e-5)
    np.testing.assert_allclose(_array(result, PRE_DENSE), pooled, atol=1e-5)
    assert not np.allclose(np.linalg.norm(pooled, axis=1), 1.0)  # before Normalize


def test_generate_hidden_states_are_mean_pooled_layers(tmp_path, teacher_plain):
    texts = make_sentences(6, seed=3)
    result = _generator(teacher_plain).generate(
        Dataset.from_dict({"text": texts}),
        output_type="hidden_states",
        layer_indices=[3, 0],
        output_dir=tmp_path / "out",
    )
    assert result.column_names == ["text", "hidden_state_layer_0", "hidden_state_layer_3"]
    teacher = SentenceTransformer(teacher_plain, device="cpu")
    last_layer_mean = SentenceTransformer(modules=[teacher[0], teacher[1]], device="cpu").encode(
        texts, convert_to_numpy=True
    )  # Pooling is mean pooling of the last layer
    np.testing.assert_allclose(_array(result, "hidden_state_layer_3"), last_layer_mean, atol=1e-5)
    assert not np.allclose(_array(result, "hidden_state_layer_0"), last_layer_mean, atol=1e-3)


def _as_parquet(corpus: Dataset, folder: Path) -> str:
    path = folder / "corpus.parquet"
    corpus.to_parquet(str(path))
    return str(path)


def _as_saved_folder(corpus: Dataset, folder: Path) -> str:
    path = folder / "saved"
    corpus.save_to_disk(str(path))
    return str(path)


@pytest.mark.parametrize("form", ["dataset", "parquet", "save_to_disk"])
def test_generate_reads_each_source_form(tmp_path, corpus, teacher_dense, form):
    source = {
        "dataset": lambda: corpus,
        "parquet": lambda: _as_parquet(corpus, tmp_path),
        "save_to_disk": lambda: _as_saved_folder(corpus, tmp_path),
    }[form]()
    result = _generator(teacher_dense).generate(
        source, output_type="pre_dense", max_samples=12, output_dir=tmp_path / "out"
    )
    assert result.column_names == ["text", PRE_DENSE]
    assert result["text"] == corpus["text"][:12]


def test_generate_default_output_dir_is_named_after_the_source(
    tmp_path, corpus, teacher_dense, monkeypatch
):
    source = _as_parquet(corpus, tmp_path)
    monkeypatch.chdir(tmp_path)
    _generator(teacher_dense).generate(source, output_type="pre_dense", max_samples=4)
    manifest = tmp_path / "teacher_embeddings" / "corpus.parquet-pre_dense" / "manifest.json"
    assert json.loads(manifest.read_text())["num_rows"] == 4


@pytest.mark.parametrize("rows", [50, 48])  # last shard partial / all shards full
def test_rerun_with_the_same_output_dir_reuses_the_shards(
    tmp_path, corpus, teacher_dense, monkeypatch, rows
):
    generator = _generator(teacher_dense, chunk_size=16)
    encoded = record_encoded(monkeypatch)
    first = generator.generate(corpus, max_samples=rows, output_dir=tmp_path / "out")
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert encoded == list(range(-(-rows // 16)))

    encoded.clear()
    second = generator.generate(corpus, max_samples=rows, output_dir=tmp_path / "out")

    assert encoded == []
    assert (tmp_path / "out" / "manifest.json").read_text() == manifest
    assert second["text"] == first["text"]
    np.testing.assert_array_equal(_array(second, FINAL), _array(first, FINAL))


def test_rerun_resumes_an_interrupted_run(tmp_path, corpus, teacher_dense, monkeypatch):
    generator = _generator(teacher_dense, chunk_size=16)
    fresh = generator.generate(corpus, output_dir=tmp_path / "fresh")
    crash_at(monkeypatch, None, 2, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        generator.generate(corpus, output_dir=tmp_path / "out")
    monkeypatch.undo()
    encoded = record_encoded(monkeypatch)

    resumed = generator.generate(corpus, output_dir=tmp_path / "out")

    assert encoded == [2, 3]
    assert resumed["text"] == corpus["text"]
    np.testing.assert_allclose(_array(resumed, FINAL), _array(fresh, FINAL), atol=1e-6)


def test_rerun_with_other_options_refuses_to_mix(tmp_path, corpus, teacher_dense):
    generator = _generator(teacher_dense)
    generator.generate(corpus, output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=r"different job \(changed: \['columns', 'output_type'\]"):
        generator.generate(corpus, output_type="pre_dense", output_dir=tmp_path / "out")


def test_invalid_texts_are_skipped(tmp_path, teacher_dense):
    source = Dataset.from_dict({"text": ["a cat", None, "", "  ", "the dog runs"]})
    result = _generator(teacher_dense).generate(source, output_dir=tmp_path / "out")
    assert result["text"] == ["a cat", "the dog runs"]


# --- generate: errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "tpu"}, r"device must be one of \['auto', 'cuda', 'mps', 'cpu'\], got 'tpu'"),
        ({"use_fp16": True, "use_bf16": True}, "use_fp16 and compute.use_bf16 are both true"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"invalid_texts": "drop"}, r"invalid_texts must be one of \['skip', 'fail'\]"),
        ({"embedding_dtype": "int8"}, r"embedding_dtype must be one of \['float32', 'float16'\]"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
    ],
)
def test_generator_rejects_bad_options_at_construction(no_weights, kwargs, message):
    with pytest.raises(ValueError, match=message):
        TeacherEmbeddingsGenerator("does/not-matter", **kwargs)


def _empty() -> Dataset:
    return Dataset.from_dict({"text": []})


@pytest.mark.parametrize(
    ("source", "kwargs", "message"),
    [
        (
            None,
            {"output_type": "cls"},
            r"output_type must be one of \['final', 'pre_dense', 'hidden_states'\], got 'cls'",
        ),
        (
            None,
            {"output_type": "hidden_states", "layer_indices": [0, 3, 5]},
            r"include \[3, 5\], but the teacher has 2 layers: valid indices are 0 .* to 2",
        ),
        (None, {"output_type": "hidden_states", "layer_indices": [-1]}, "layer numbers >= 0"),
        (
            None,
            {"text_column": "body"},
            r"Text column 'body' not found in the corpus; its columns are \['text', 'source'\]",
        ),
        (_empty, {}, r"The corpus is empty \(0 rows\)"),
        (
            lambda: Dataset.from_dict({"text": [None, "", "   "]}),
            {},
            "All 3 texts in column 'text' are None, empty or not strings",
        ),
        (None, {"max_samples": 0}, "max_samples must be a positive integer, got 0"),
    ],
)
def test_generate_fails_before_loading_the_teacher(
    tmp_path, corpus, teacher_dense, no_weights, source, kwargs, message
):
    source_dataset = corpus if source is None else source()
    with pytest.raises(ValueError, match=message):
        _generator(teacher_dense).generate(source_dataset, output_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_streamed_file_that_is_not_utf8_fails_before_any_shard_is_written(
    tmp_path, teacher_dense
):
    """Read as it is encoded, a.txt (over one 1000-row read) would give shards before b.txt."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("".join(f"good line {i}\n" for i in range(1100)))
    bad = folder / "b.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(
        ValueError,
        match=(
            rf"The corpus file {re.escape(str(bad))} is not valid UTF-8: byte 0xe9 at byte "
            r"offset 3 \(line 1\) is the first that does not decode.* Re-encode it to UTF-8"
        ),
    ):
        _generator(teacher_dense, chunk_size=100).generate(
            folder, output_dir=tmp_path / "out", streaming=True
        )
    assert not (tmp_path / "out").exists()


def test_invalid_texts_fail_names_the_rows(tmp_path, teacher_dense, no_weights):
    source = Dataset.from_dict({"text": ["a cat", None, "the dog"]})
    with pytest.raises(
        ValueError,
        match=r"1 of 3 texts in column 'text' are None, empty or not strings \(row 1: None\)",
    ):
        _generator(teacher_dense, invalid_texts="fail").generate(source, output_dir=tmp_path)


def test_missing_teacher_path(tmp_path, corpus, no_weights):
    missing = str(tmp_path / "no-such-teacher")
    with pytest.raises(FileNotFoundError, match=r"teacher_model path '.*no-such-teacher' does not"):
        _generator(missing).generate(corpus, output_dir=tmp_path / "out")


def test_missing_corpus_path(tmp_path, teacher_dense, no_weights):
    with pytest.raises(FileNotFoundError, match=r"Corpus path '.*nothing.parquet' does not exist"):
        _generator(teacher_dense).generate(str(tmp_path / "nothing.parquet"), output_dir=tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(tmp_path, corpus, teacher_dense):
    generator = TeacherEmbeddingsGenerator(teacher_dense, device="cuda")
    with pytest.raises(RuntimeError, match="compute.device is 'cuda' but torch sees no CUDA"):
        generator.generate(corpus, output_dir=tmp_path / "out")


# --- train -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["dataset", "shard_folder", "parquet"])
def test_train_accepts_each_dataset_form(tmp_path, embedded, student_dense, form):
    dataset, folder = embedded
    source = {
        "dataset": lambda: dataset,
        "shard_folder": lambda: str(folder),
        "parquet": lambda: _as_parquet(dataset, tmp_path),
    }[form]()
    trainer = EmbeddingDistillationTrainer(_config(student_dense, tmp_path / "model"))

    metrics = trainer.train(source)

    assert isinstance(metrics["train_loss"], float)
    assert 0 < metrics["train_loss"] < 4 / 40  # MSE between unit vectors of 40 dims
    assert metrics["global_step"] == 3  # 24 rows / batch 8, one epoch
    saved = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert saved.get_embedding_dimension() == 40
    texts = dataset["text"][:4]
    np.testing.assert_allclose(
        saved.encode(texts), trainer.model.encode(texts), atol=1e-5
    )  # the saved model is the trained one


def test_train_tracks_the_student_on_held_out_rows_and_dev_pairs(tmp_path, embedded, student):
    dataset = embedded[0]
    pairs = Dataset.from_dict(
        {
            "sentence1": dataset["text"][:6],
            "sentence2": dataset["text"][6:12],
            "score": [1.0, 4.0, 2.5, 0.5, 3.0, 5.0],
        }
    )
    config = _config(student, tmp_path / "model", eval_steps=1)
    metrics = EmbeddingDistillationTrainer(config).train(
        dataset.select(range(16)), eval_dataset=dataset.select(range(16, 24)), sts_dev=pairs
    )
    assert [point["step"] for point in metrics["evaluations"]] == [0, 1, 2]
    assert metrics["best_metric"] == "sts_dev"
    assert metrics["kept_step"] == metrics["best_step"]


def test_train_refuses_a_best_metric_without_its_data_before_training(tmp_path, embedded):
    config = _config("does/not-exist", tmp_path / "model", metric_for_best_model="sts_dev")
    with pytest.raises(ValueError, match=r"metric_for_best_model is 'sts_dev' but there are no"):
        EmbeddingDistillationTrainer(config).train(
            embedded[0], eval_dataset=embedded[0].select(range(4))
        )


@pytest.mark.parametrize(
    ("student_name", "target_type", "loss_type", "dim", "modules"),
    [
        ("student", "final", "mse", 40, ["Transformer", "Pooling", "Dense", "Normalize"]),
        ("student", "pre_dense", "cosine", 48, ["Transformer", "Pooling", "Dense"]),
        ("student_dense", "final", "cosine", 40, ["Transformer", "Pooling", "Dense", "Normalize"]),
        ("student_dense", "pre_dense", "mse", 48, ["Transformer", "Pooling", "Dense"]),
    ],
)
def test_trained_model_outputs_the_target_size(
    request, tmp_path, embedded, student_name, target_type, loss_type, dim, modules
):
    config = _config(
        request.getfixturevalue(student_name),
        tmp_path / "model",
        target_type=target_type,
        loss_type=loss_type,
    )
    metrics = EmbeddingDistillationTrainer(config).train(embedded[0])

    assert np.isfinite(metrics["train_loss"])
    if loss_type == "cosine":
        assert 0 < metrics["train_loss"] < 2
    saved = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert saved.get_embedding_dimension() == dim
    assert [type(m).__name__ for m in saved] == modules
    assert saved.encode(["a cat sleeps"]).shape == (1, dim)


def test_loss_type_selects_the_loss(tmp_path, embedded, student_dense):
    """One step from the same start: for unit vectors, MSE * dim / 2 == 1 - cosine."""
    rows = embedded[0].select(range(8))  # one batch
    losses = {
        loss_type: EmbeddingDistillationTrainer(
            _config(student_dense, tmp_path / loss_type, loss_type=loss_type)
        ).train(rows)["train_loss"]
        for loss_type in ("mse", "cosine")
    }
    assert losses["mse"] * 40 / 2 == pytest.approx(losses["cosine"], rel=1e-4)


def test_train_on_less_than_one_batch_still_learns(tmp_path, embedded, student_dense):
    before = SentenceTransformer(student_dense, device="cpu").state_dict()
    trainer = EmbeddingDistillationTrainer(
        _config(student_dense, tmp_path / "model", logging_steps=1)
    )
    metrics = trainer.train(embedded[0].select(range(5)))
    assert metrics["global_step"] == 1
    after = trainer.model.state_dict()
    assert set(after) == set(before)
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert {"0.model.embeddings.word_embeddings.weight", "2.linear.weight"} <= set(changed)


# --- train: errors -----------------------------------------------------------------------------


def test_projection_none_with_a_size_mismatch(tmp_path, embedded, student):
    config = _config(student, tmp_path / "model", projection="none")
    with pytest.raises(
        ValueError,
        match=r"The student outputs 32-d embeddings but the target 'teacher_embedding_final' "
        r"is 40-d. Set projection: learned",
    ):
        EmbeddingDistillationTrainer(config).train(embedded[0])
    assert not (tmp_path / "model").exists()


def test_pre_dense_embeddings_with_target_final_hints_at_the_fix(
    tmp_path, embedded, student, no_weights
):
    pre_dense_only = embedded[0].remove_columns(FINAL)
    with pytest.raises(
        ValueError,
        match=r"lacks column\(s\) \['teacher_embedding_final'\] needed for target_type 'final'; "
        r"its columns are \['text', 'teacher_embedding_pre_dense'\]\. .*use target_type "
        r"'pre_dense' or re-encode with output_type 'final'",
    ):
        EmbeddingDistillationTrainer(_config(student, tmp_path / "model")).train(pre_dense_only)


def test_final_only_embeddings_with_target_pre_dense_hint_at_the_fix(
    tmp_path, embedded, student, no_weights
):
    final_only = embedded[0].remove_columns(PRE_DENSE)
    config = _config(student, tmp_path / "model", target_type="pre_dense")
    with pytest.raises(
        ValueError,
        match=r"lacks column\(s\) \['teacher_embedding_pre_dense'\] .*nothing but Normalize "
        r"after pooling.*use target_type 'final', or re-encode with output_type 'pre_dense'",
    ):
        EmbeddingDistillationTrainer(config).train(final_only)


def test_training_data_errors(tmp_path, embedded, student, no_weights):
    config = _config(student, tmp_path / "model", text_column="body")
    with pytest.raises(
        ValueError,
        match=r"lacks the text column 'body' \(text_column\); its columns are \[.*\]\. Set "
        r"text_column to the one holding the texts\.",
    ):
        EmbeddingDistillationTrainer(config).train(embedded[0])
    empty = embedded[0].select([])
    with pytest.raises(ValueError, match=r"The training data is empty \(0 rows\)"):
        EmbeddingDistillationTrainer(_config(student, tmp_path / "model")).train(empty)
    streamed = embedded[0].to_iterable_dataset()
    with pytest.raises(TypeError, match=r"needs the embeddings as a map-style dataset .*got an"):
        EmbeddingDistillationTrainer(_config(student, tmp_path / "model")).train(streamed)


def test_missing_student_path(tmp_path, embedded, no_weights):
    config = _config(str(tmp_path / "no-such-student"), tmp_path / "model")
    with pytest.raises(FileNotFoundError, match=r"student_model path '.*no-such-student' does not"):
        EmbeddingDistillationTrainer(config).train(embedded[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_type": "cls"}, r"target_type must be one of \['final', 'pre_dense'\], got 'cls'"),
        (
            {"loss_type": "l1"},
            r"loss_type must be one of \['mse', 'cosine', 'similarity'\], got 'l1'",
        ),
        ({"projection": "svd"}, r"projection must be one of \['learned', 'pca', 'none'\]"),
        ({"device": "tpu"}, r"device must be one of \['auto', 'cuda', 'mps', 'cpu'\], got 'tpu'"),
        ({"use_fp16": True, "use_bf16": True}, "use_fp16 and compute.use_bf16 are both true"),
        ({"push_to_hub": True}, "push_to_hub is true but hub_model_id is not set"),
        ({"student_model": ""}, "student_model is required"),
        ({"num_epochs": 0}, "num_epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
        ({"learning_rate": 0}, "learning_rate must be > 0, got 0"),
        ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\), got 1.0"),
    ],
)
def test_trainer_config_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingTrainerConfig(**{"student_model": "org/student"} | kwargs)


def test_generate_again_re_encodes_a_damaged_shard(tmp_path, corpus, teacher_dense, monkeypatch):
    generator = _generator(teacher_dense, chunk_size=16)
    first = generator.generate(corpus, output_dir=tmp_path / "out")
    (tmp_path / "out" / "data" / "train-00001.parquet").write_bytes(b"PAR1 truncated")
    encoded = record_encoded(monkeypatch)
    again = generator.generate(corpus, output_dir=tmp_path / "out")
    assert encoded == [1]
    np.testing.assert_allclose(_array(again, FINAL), _array(first, FINAL), atol=1e-6)


# --- distill_students --------------------------------------------------------------------------

FAST_EVALUATION = EvaluationConfig(speed_texts=8)


def test_distill_students_trains_each_config_and_compares_them(
    tmp_path, embedded, student, student_dense, teacher_dense, monkeypatch
):
    """Two configs sharing output_dir, named after their model folders; teacher from the manifest."""
    teachers = []
    evaluate = evaluation_run.evaluate_distillation

    def spy(*args, **kwargs):
        teachers.append(kwargs["teacher_model"])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr("embedding_distillation.api.evaluate_distillation", spy)
    minilm = shutil.copytree(student, tmp_path / "Tiny-MiniLM")
    dense = shutil.copytree(student_dense, tmp_path / "tiny.dense")
    shared = tmp_path / "models"

    comparison = distill_students(
        str(embedded[1]),  # the shard folder: its manifest.json names teacher_dense
        [_config(str(minilm), shared), _config(str(dense), shared)],
        evaluation=FAST_EVALUATION,
    )

    assert teachers == [teacher_dense, teacher_dense]
    assert comparison.failures == {}
    assert list(comparison.models) == ["tiny_minilm", "tiny_dense"]
    record = comparison.record
    assert record["students"] == ["tiny_minilm", "tiny_dense"]
    assert [(row["name"], row["form"]) for row in record["rows"]] == [
        ("teacher", "teacher"),
        ("tiny_minilm", "torch"),
        ("tiny_dense", "torch"),
    ]
    teacher_row, *student_rows = record["rows"]
    assert teacher_row["quality"] == 1.0  # held-out cosine: no STS-B pairs were given
    for row in student_rows:
        assert -1 <= row["heldout_cosine"] <= 1
        assert row["speedup"] > 0
    assert not [note for note in record["notes"] if note.startswith("Not comparable")]
    texts = embedded[0]["text"][:3]
    for name, model in comparison.models.items():
        saved = SentenceTransformer(str(shared / name), device="cpu")  # its own folder
        np.testing.assert_allclose(saved.encode(texts), model.encode(texts), atol=1e-5)
        assert f"| `{name}` |" in comparison.report


def test_distill_students_records_a_failing_student_and_trains_the_next(
    tmp_path, embedded, student, teacher_dense
):
    comparison = distill_students(
        embedded[0],  # a Dataset: no manifest, so the teacher is given
        {
            "broken": _config(student, tmp_path / "broken", text_column="missing"),
            "good": _config(student, tmp_path / "good"),
        },
        teacher_model=teacher_dense,
        evaluation=FAST_EVALUATION,
    )

    assert list(comparison.models) == ["good"]
    assert (tmp_path / "good" / "modules.json").is_file()
    assert not (tmp_path / "broken").exists()
    failure = comparison.failures["broken"]
    assert (failure["student"], failure["step"], failure["error"]) == (
        "broken",
        "train_student_model",
        "ValueError",
    )
    assert "lacks the text column 'missing'" in failure["message"]
    assert [row["name"] for row in comparison.record["rows"]] == ["teacher", "broken", "good"]
    assert comparison.record["rows"][1]["failed"].startswith(
        "failed at train_student_model: ValueError: "
    )
    with pytest.raises(ExceptionGroup, match="1 of 2 students failed"):
        comparison.raise_failures()


@pytest.fixture
def nothing_loads(monkeypatch: pytest.MonkeyPatch, no_weights: None) -> None:
    """Make loading the embeddings fail loudly too."""

    def refuse(*args, **kwargs):
        raise AssertionError("the embeddings were loaded before the error")

    monkeypatch.setattr("embedding_distillation.api.load_corpus", refuse)


@pytest.mark.parametrize(
    ("students", "kwargs", "error", "message"),
    [
        (
            lambda s, out: [_config(s, out / "a"), _config(s, out / "b")],
            {},
            ValueError,
            r"students\[0\] and students\[1\] both get the name 'model' .*pass a dict "
            r"\{name: config\} to name them",
        ),
        (
            lambda s, out: {"mini-lm": _config(s, out)},
            {},
            ValueError,
            r"'mini-lm' is not a Python identifier .* e\.g\. mini_lm",
        ),
        (
            lambda s, out: {
                name: _config(s, out / name, push_to_hub=True, hub_model_id="me/student")
                for name in ("a", "b")
            },
            {},
            ValueError,
            r"Students 'a' and 'b' both push to hub_model_id 'me/student': one would overwrite "
            r"the other's model on the Hub\. Give each config its own hub_model_id",
        ),
        (
            lambda s, out: {
                "a": _config(s, out),
                "b": _config(s, out),  # moved to out/b
                "c": _config(s, out / "a"),  # where a is moved to
            },
            {},
            ValueError,
            r"Students 'a' and 'c' both save to output_dir '.*/a': one would resume from or "
            r"overwrite the other's checkpoints",
        ),
        (
            lambda s, out: {"a": _config(s, out)},
            {"dataset": "parquet"},
            ValueError,
            r"'.*corpus\.parquet' has no manifest\.json, which would name it\. Pass "
            r"teacher_model=<the teacher's Hub id or folder>",
        ),
        (
            lambda s, out: {"a": _config(s, out)},
            {"dataset": "in_memory"},
            ValueError,
            r"the dataset 'dataset-.*' is not a folder with a manifest\.json.* Pass teacher_model=",
        ),
        (
            _config,  # one config, not a list of them
            {},
            TypeError,
            r"students must be a dict \{name: EmbeddingTrainerConfig\} or a list of "
            r"EmbeddingTrainerConfig, got EmbeddingTrainerConfig",
        ),
        (
            lambda s, out: {},
            {},
            ValueError,
            "distill_students needs at least one student",
        ),
    ],
)
def test_distill_students_refuses_bad_students_before_anything_loads(
    tmp_path, embedded, student, nothing_loads, students, kwargs, error, message
):
    dataset = {
        None: lambda: str(embedded[1]),
        "parquet": lambda: _as_parquet(embedded[0], tmp_path),
        "in_memory": lambda: Dataset.from_dict({"text": ["a cat"]}),
    }[kwargs.get("dataset")]()
    with pytest.raises(error, match=message):
        distill_students(dataset, students(student, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
