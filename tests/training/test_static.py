"""``student_type: static``: a model2vec distillation as the student, trained like any other."""

import logging
import re

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding

from embedding_distillation.models import backbone, has_dense, pooling_index
from embedding_distillation.training import static
from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import load_student, prepare_student
from embedding_distillation.training.trainer import train_student
from tests.conftest import make_sentences
from tests.training.conftest import training_config

FINAL = "teacher_embedding_final"


def _config(tmp_path, teacher, **kwargs) -> EmbeddingTrainerConfig:
    options = {"student_model": teacher, "student_type": "static", "learning_rate": 5e-2}
    return training_config(tmp_path, **options | kwargs)


def _names(model: SentenceTransformer) -> list[str]:
    return [type(m).__name__ for m in model]


@pytest.fixture
def teacher_rows(teacher_dense) -> Dataset:
    """64 texts with the tiny Dense teacher's final (40-d) embeddings."""
    texts = make_sentences(64, seed=21)
    teacher = SentenceTransformer(teacher_dense, device="cpu")
    return Dataset.from_dict({"text": texts, FINAL: teacher.encode(texts).tolist()})


def _distance(model: SentenceTransformer, rows: Dataset) -> float:
    """Mean cosine distance of the model's embeddings to the stored targets."""
    embeddings = model.encode(rows["text"], convert_to_tensor=True)
    targets = torch.tensor(rows[FINAL])
    return float(1 - torch.nn.functional.cosine_similarity(embeddings, targets).mean())


# --- the student's shape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pca_dims", "target_dim", "projection", "modules"),
    [
        (16, 40, "learned", ["StaticEmbedding", "Dense", "Normalize"]),  # 16-d, projected to 40
        (16, 40, "pca", ["StaticEmbedding", "Dense", "Normalize"]),
        # As wide as the target, the PCA basis of the vectors still needs its map to the target.
        (40, 40, "learned", ["StaticEmbedding", "Dense", "Normalize"]),
        (40, 40, "none", ["StaticEmbedding", "Normalize"]),
    ],
)
def test_static_student_is_a_distillation_with_projection_and_normalize(
    tmp_path, teacher_dense, teacher_rows, pca_dims, target_dim, projection, modules
):
    config = _config(tmp_path, teacher_dense, static_pca_dims=pca_dims, projection=projection)
    model = prepare_student(config, target_dim, teacher_rows)
    assert _names(model) == modules
    assert model.get_embedding_dimension() == target_dim
    embedding = model[0]
    assert isinstance(embedding, StaticEmbedding) and isinstance(model[-1], Normalize)
    assert embedding.embedding_dim == pca_dims
    # The 200-token vocabulary without its special tokens: one vector per kept token.
    assert 150 < embedding.num_embeddings < 200


def test_untrained_student_is_model2vecs_own_distillation(tmp_path, teacher_dense):
    from model2vec.distill import distill_from_model

    config = _config(tmp_path, teacher_dense, static_pca_dims=16, static_sif_coefficient=1e-3)
    texts = make_sentences(6, seed=4)
    teacher = SentenceTransformer(teacher_dense, device="cpu")
    reference = distill_from_model(
        teacher[0].auto_model,
        teacher[0].tokenizer,
        device="cpu",
        pca_dims=16,
        sif_coefficient=1e-3,
        quantize_to="float32",
    )

    student = load_student(config)  # what the evaluation calls "student before training"

    assert _names(student) == ["StaticEmbedding", "Normalize"]
    assert not student.training
    np.testing.assert_allclose(student.encode(texts), reference.encode(texts), atol=1e-5)


@pytest.mark.parametrize(("pca_dims", "dim"), [(16, 16), (256, 48), (None, 48), (500, 48)])
def test_the_dry_run_shape_is_the_distillations_shape(tmp_path, teacher_dense, pca_dims, dim):
    config = _config(tmp_path, teacher_dense, static_pca_dims=pca_dims)
    planned = load_student(config, for_training=True, shape_only=True)
    distilled = load_student(config, for_training=True)
    assert _names(planned) == _names(distilled) == ["StaticEmbedding", "Normalize"]
    assert planned[0].embedding_dim == distilled[0].embedding_dim == dim
    # The plan counts every tokenizer entry; the distillation drops the special tokens.
    vocabulary = len(SentenceTransformer(teacher_dense, device="cpu")[0].tokenizer)
    assert planned[0].num_embeddings == vocabulary
    assert vocabulary - 5 <= distilled[0].num_embeddings < vocabulary


def test_the_dry_run_shape_runs_no_distillation(tmp_path, teacher_dense, monkeypatch):
    import model2vec.distill

    static.distil_vocabulary.cache_clear()

    def forbidden(*args, **kwargs):
        raise AssertionError("the dry run must not distil")

    monkeypatch.setattr(model2vec.distill, "distill_from_model", forbidden)
    config = _config(tmp_path, teacher_dense, static_pca_dims=16)
    assert _names(prepare_student(config, 40, shape_only=True)) == [
        "StaticEmbedding",
        "Dense",
        "Normalize",
    ]


def test_models_helpers_treat_static_embedding_as_the_backbone(tmp_path, teacher_dense):
    model = prepare_student(_config(tmp_path, teacher_dense, static_pca_dims=16), 40)
    assert pooling_index(model) == 0
    assert has_dense(model) is True
    assert _names(backbone(model)) == ["StaticEmbedding"]
    assert has_dense(load_student(_config(tmp_path, teacher_dense))) is False


# --- the distillation is made once per process ------------------------------------------------


def test_distillation_is_reused_and_each_student_has_its_own_weights(
    tmp_path, teacher_dense, teacher_rows, monkeypatch
):
    import model2vec.distill

    static.distil_vocabulary.cache_clear()
    calls = []
    original = model2vec.distill.distill_from_model

    def counting(*args, **kwargs):
        calls.append(kwargs["pca_dims"])
        return original(*args, **kwargs)

    monkeypatch.setattr(model2vec.distill, "distill_from_model", counting)
    config = _config(tmp_path, teacher_dense, static_pca_dims=16, logging_steps=1)

    trained = prepare_student(config, 40, teacher_rows)
    fresh = load_student(config)[0].embedding.weight.detach().clone()
    train_student(trained, teacher_rows, config)
    untrained = load_student(config)[0].embedding.weight  # the evaluation's "before" student
    load_student(_config(tmp_path, teacher_dense, static_pca_dims=16, batch_size=4))
    load_student(_config(tmp_path, teacher_dense, static_pca_dims=8))

    assert calls == [16, 8]  # once per option set (the batch size is not one)
    assert torch.equal(untrained, fresh)  # training the first copy left the cache as it was
    assert not torch.allclose(trained[0].embedding.weight, untrained, atol=1e-3)


# --- training, saving, reloading ---------------------------------------------------------------


def test_train_student_brings_a_static_student_closer_to_the_teacher(
    tmp_path, teacher_dense, teacher_rows
):
    config = _config(
        tmp_path,
        teacher_dense,
        static_pca_dims=16,
        loss_type="cosine",
        num_epochs=5,
        logging_steps=5,
    )
    model = prepare_student(config, 40, teacher_rows)
    before = _distance(model, teacher_rows)
    table = model[0].embedding.weight.detach().clone()

    metrics = train_student(model, teacher_rows, config)

    assert metrics["global_step"] == 40  # ceil(64 / 8) x 5
    assert not torch.equal(model[0].embedding.weight, table)
    assert _distance(model, teacher_rows) < 0.7 * before
    losses = [entry["loss"] for entry in metrics["log_history"] if "loss" in entry]
    assert losses[-1] < losses[0]


def test_saved_static_student_reloads_to_the_same_embeddings(tmp_path, teacher_dense, teacher_rows):
    config = _config(tmp_path, teacher_dense, static_pca_dims=16, num_epochs=2)
    model = prepare_student(config, 40, teacher_rows)
    train_student(model, teacher_rows, config)
    folder = tmp_path / "static_student"
    model.save(str(folder))
    texts = make_sentences(8, seed=3)

    reloaded = SentenceTransformer(str(folder), device="cpu")

    assert _names(reloaded) == ["StaticEmbedding", "Dense", "Normalize"]
    np.testing.assert_allclose(reloaded.encode(texts), model.encode(texts), atol=1e-6)
    # Named as student_model, a static folder is loaded as it is (no second distillation),
    # and it keeps its one projection.
    again = load_student(_config(tmp_path, str(folder)))
    np.testing.assert_allclose(again.encode(texts), model.encode(texts), atol=1e-6)
    resumed = prepare_student(_config(tmp_path, str(folder)), 40, teacher_rows)
    assert _names(resumed) == ["StaticEmbedding", "Dense", "Normalize"]


def test_a_static_folder_without_normalize_gets_one(tmp_path, teacher_dense):
    bare = load_student(_config(tmp_path, teacher_dense, static_pca_dims=16), for_training=True)
    folder = tmp_path / "bare"
    SentenceTransformer(modules=[bare[0]], device="cpu").save(str(folder))
    assert _names(load_student(_config(tmp_path, str(folder)))) == [
        "StaticEmbedding",
        "Normalize",
    ]


def test_gradient_checkpointing_has_no_effect_and_training_goes_on(
    tmp_path, teacher_dense, teacher_rows, caplog
):
    config = _config(tmp_path, teacher_dense, static_pca_dims=16, gradient_checkpointing=True)
    model = prepare_student(config, 40, teacher_rows)
    with caplog.at_level(logging.WARNING):
        metrics = train_student(model, teacher_rows, config)
    assert metrics["global_step"] == 8
    assert "StaticEmbedding) is not a transformer" in caplog.text


def test_a_transformer_learning_rate_is_warned_about(tmp_path, teacher_dense, caplog):
    with caplog.at_level(logging.WARNING):
        load_student(_config(tmp_path, teacher_dense, learning_rate=1e-4), for_training=True)
    assert "learning_rate 0.0001 is small for a static student" in caplog.text


# --- options refused before any model loads ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"student_init": (0, 2)},
            r"student_init \(0, 2\) does not apply to student_type 'static': a static student "
            r"has no transformer layers to keep; set student_init: null, or use student_type: "
            r"transformer\.",
        ),
        (
            {"hidden_state_layer_map": {1: 2}},
            r"hidden_state_layer_map \{1: 2\} does not apply to student_type 'static': .*set "
            r"hidden_state_layer_map: null",
        ),
        (
            {"target_type": "pre_dense"},
            r"target_type 'pre_dense' does not apply to student_type 'static': .*set "
            r"target_type: final",
        ),
        (
            {"student_type": "bag"},
            r"student_type must be one of \['transformer', 'static'\], got 'bag'\.",
        ),
    ],
)
def test_options_a_static_student_cannot_honour_are_refused(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        _config(tmp_path, "missing/folder/never/loaded", **options)


@pytest.mark.parametrize("dims", [0, -3, 2.5, True, "256"])
def test_static_pca_dims_must_be_a_positive_integer_or_null(tmp_path, dims):
    with pytest.raises(
        ValueError,
        match=rf"static_pca_dims must be a positive integer or null, got {re.escape(repr(dims))}\.",
    ):
        _config(tmp_path, "org/teacher", static_pca_dims=dims)


@pytest.mark.parametrize("sif", [0, 1, 1.5, -1e-4, True, "1e-4"])
def test_static_sif_coefficient_must_be_in_the_open_unit_interval_or_null(tmp_path, sif):
    with pytest.raises(
        ValueError,
        match=rf"static_sif_coefficient must be a number in \(0, 1\) or null, got "
        rf"{re.escape(repr(sif))}\. model2vec's default is 1e-4",
    ):
        _config(tmp_path, "org/teacher", static_sif_coefficient=sif)


def test_from_params_reads_the_static_options():
    config = EmbeddingTrainerConfig.from_params(
        {
            "student_model": "org/teacher",
            "student_type": "static",
            "static_pca_dims": None,
            "static_sif_coefficient": 1e-3,
        },
        {"device": "cpu"},
    )
    assert (config.student_type, config.static_pca_dims) == ("static", None)
    assert config.static_sif_coefficient == 1e-3
    default = EmbeddingTrainerConfig(student_model="org/student")
    assert (default.student_type, default.static_pca_dims) == ("transformer", 256)


def test_a_model_without_a_transformer_cannot_be_distilled(tmp_path, teacher_dense):
    bare = load_student(_config(tmp_path, teacher_dense, static_pca_dims=16), for_training=True)
    with pytest.raises(
        ValueError,
        match=r"student_type 'static' distils the vocabulary of a transformer with a fast "
        r"tokenizer, but student_model 'some/model' starts with StaticEmbedding",
    ):
        static.transformer_parts(bare, "some/model")


def test_missing_distillation_dependency_says_what_to_install(tmp_path, teacher_dense, monkeypatch):
    import sys

    static.distil_vocabulary.cache_clear()
    monkeypatch.setitem(sys.modules, "model2vec.distill", None)  # makes the import fail
    with pytest.raises(
        ImportError,
        match=r"Install the static extra \(model2vec and its tokenizer dependency skeletoken\) "
        r"with `pip install 'embedding-distillation\[static\]'`",
    ):
        load_student(_config(tmp_path, teacher_dense, static_pca_dims=12))
