"""student_init: a student built from the teacher by keeping some of its transformer layers."""

import logging

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import prepare_student
from embedding_distillation.training.student_init import keep_layers
from embedding_distillation.training.trainer import train_student
from tests.conftest import make_sentences

FINAL = "teacher_embedding_final"
TEXTS = make_sentences(6, seed=11)


def _load(path: str) -> SentenceTransformer:
    return SentenceTransformer(path, device="cpu")


def _query_weight(model: SentenceTransformer, index: int) -> torch.Tensor:
    return model[0].auto_model.encoder.layer[index].attention.self.query.weight


def test_keep_layers_keeps_the_listed_layers(teacher_plain, tmp_path, caplog):
    teacher = _load(teacher_plain)
    with caplog.at_level(logging.INFO, logger="embedding_distillation.training.student_init"):
        student = keep_layers(_load(teacher_plain), (0, 2))
    assert "kept 2 of 3 transformer layers" in caplog.text
    auto_model = student[0].auto_model
    assert auto_model.config.num_hidden_layers == 2
    assert len(auto_model.encoder.layer) == 2
    assert torch.equal(_query_weight(student, 0), _query_weight(teacher, 0))
    assert torch.equal(_query_weight(student, 1), _query_weight(teacher, 2))
    assert [layer.attention.self.layer_idx for layer in auto_model.encoder.layer] == [0, 1]

    embeddings = student.encode(TEXTS)
    assert embeddings.shape == (len(TEXTS), 48)
    assert not np.allclose(embeddings, teacher.encode(TEXTS), atol=1e-4)

    student.save(str(tmp_path / "student"))
    reloaded = _load(str(tmp_path / "student"))
    assert reloaded[0].auto_model.config.num_hidden_layers == 2
    np.testing.assert_array_equal(reloaded.encode(TEXTS), embeddings)


def test_keeping_every_layer_reproduces_the_teacher(teacher_plain):
    teacher = _load(teacher_plain)
    student = keep_layers(_load(teacher_plain), [0, 1, 2])
    np.testing.assert_array_equal(student.encode(TEXTS), teacher.encode(TEXTS))


def test_keep_layers_cuts_per_layer_config_lists(teacher_plain):
    model = _load(teacher_plain)
    config = model[0].auto_model.config
    config.layer_types = ["full_attention", "sliding_attention", "full_attention"]
    keep_layers(model, [1, 2])
    assert config.layer_types == ["sliding_attention", "full_attention"]


def test_keep_layers_rejects_an_index_out_of_range(teacher_plain):
    with pytest.raises(ValueError, match=r"\[3\] out of range.*valid indices are 0\.\.2"):
        keep_layers(_load(teacher_plain), [0, 3])


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([], "non-empty list"),
        ((2, 0), "strictly increasing, got \\(2, 0\\)"),
        ((0, 0), "strictly increasing"),
        ((-1, 2), "indices must be integers >= 0, got \\(-1, 2\\)"),
        ((0, 1.5), "integers >= 0"),
        ("0,2", "non-empty list"),
    ],
)
def test_config_rejects_bad_student_init(layers, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingTrainerConfig(student_model="org/student", student_init=layers)


def test_from_params_turns_a_list_into_a_tuple():
    config = EmbeddingTrainerConfig.from_params(
        {"student_model": "org/teacher", "student_init": [0, 2, 4]}, None
    )
    assert config.student_init == (0, 2, 4)
    assert EmbeddingTrainerConfig.from_params({"student_model": "org/x"}).student_init is None


def test_prepare_and_train_a_student_cut_from_the_teacher(teacher_plain, tmp_path):
    rng = np.random.default_rng(0)
    texts = make_sentences(16, seed=3)
    data = Dataset.from_dict(
        {"text": texts, FINAL: rng.normal(size=(16, 48)).astype(np.float32).tolist()}
    )
    config = EmbeddingTrainerConfig(
        student_model=teacher_plain,
        student_init=(0, 2),
        output_dir=str(tmp_path / "checkpoints"),
        num_epochs=1,
        batch_size=8,
        learning_rate=1e-3,
        device="cpu",
    )
    model = prepare_student(config, target_dim=48, fit_data=data)
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"]
    before = _query_weight(model, 1).detach().clone()
    metrics = train_student(model, data, config)
    assert metrics["global_step"] == 2
    assert model[0].auto_model.config.num_hidden_layers == 2
    assert len(model[0].auto_model.encoder.layer) == 2
    assert not torch.equal(_query_weight(model, 1), before)


def test_keep_layers_names_the_model_without_a_layer_stack(teacher_plain):
    model = _load(teacher_plain)
    model[0].auto_model.config.num_hidden_layers = 5  # no ModuleList of 5 layers
    with pytest.raises(ValueError, match="unique stack of 5 transformer layers in BertModel"):
        keep_layers(model, [0])
