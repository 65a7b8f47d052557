"""The student that training starts from: shaped to the target, its projection, data checks."""

import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.training.student import check_training_data, prepare_student
from tests.conftest import make_sentences
from tests.training.conftest import training_config, training_rows

FINAL = "teacher_embedding_final"
PRE_DENSE = "teacher_embedding_pre_dense"


_config = training_config
_data = training_rows


def _names(model: SentenceTransformer) -> list[str]:
    return [type(m).__name__ for m in model]


# --- prepare_student ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target_type", "target_dim", "modules", "dim"),
    [
        ("final", 40, ["Transformer", "Pooling", "Dense", "Normalize"], 40),
        ("final", 24, ["Transformer", "Pooling", "Dense", "Dense", "Normalize"], 24),
        ("pre_dense", 32, ["Transformer", "Pooling"], 32),  # backbone only
        ("pre_dense", 48, ["Transformer", "Pooling", "Dense"], 48),
    ],
)
def test_prepare_student_shapes_the_student_to_the_target(
    tmp_path, student_dense, target_type, target_dim, modules, dim
):
    config = _config(tmp_path, student_model=student_dense, target_type=target_type)
    model = prepare_student(config, target_dim)
    assert _names(model) == modules
    assert model.get_embedding_dimension() == dim


def test_prepare_student_projection_is_seeded(tmp_path, student):
    def projection(seed: int) -> torch.Tensor:
        config = _config(tmp_path, student_model=student, seed=seed)
        return prepare_student(config, 40)[2].linear.weight.detach().clone()

    assert torch.equal(projection(1), projection(1))
    assert not torch.equal(projection(1), projection(2))


def test_projection_fitted_on_the_data_recovers_a_linear_target(tmp_path, student):
    """Least squares: targets that are an exact affine map of the pooled output fit closely."""
    texts = make_sentences(80, seed=12)
    model = SentenceTransformer(student, device="cpu")
    backbone = SentenceTransformer(modules=[model[0], model[1]], device="cpu")
    generator = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(32, 48, generator=generator), torch.randn(48, generator=generator)
    targets = backbone.encode(texts, convert_to_tensor=True) @ weight + bias
    data = Dataset.from_dict({"text": texts, PRE_DENSE: targets.numpy().tolist()})
    config = _config(
        tmp_path, student_model=student, target_type="pre_dense", projection_init="least_squares"
    )

    fitted = prepare_student(config, 48, data)
    unfitted = prepare_student(config, 48)

    assert _names(fitted) == ["Transformer", "Pooling", "Dense"]
    fitted_error = (fitted.encode(texts, convert_to_tensor=True) - targets).pow(2).mean()
    unfitted_error = (unfitted.encode(texts, convert_to_tensor=True) - targets).pow(2).mean()
    assert fitted_error < 1e-2 * targets.pow(2).mean()
    assert fitted_error < 1e-2 * unfitted_error


# --- check_training_data -----------------------------------------------------------------------


@pytest.mark.parametrize(("target_type", "dim"), [("final", 40), ("pre_dense", 48)])
def test_check_training_data_returns_the_target_size(tmp_path, target_type, dim):
    data = _data(3, {FINAL: 40, PRE_DENSE: 48})
    assert check_training_data(data, _config(tmp_path, target_type=target_type)) == dim


def test_missing_pre_dense_column_has_no_final_hint(tmp_path):
    data = _data(3, {"hidden_state_layer_0": 48})
    with pytest.raises(
        ValueError, match=r"lacks column\(s\) \['teacher_embedding_pre_dense'\]"
    ) as e:
        check_training_data(data, _config(tmp_path, target_type="pre_dense"))
    assert "re-encode" not in str(e.value)


def test_missing_final_column_hints_at_the_fix(tmp_path):
    data = _data(3, {"hidden_state_layer_0": 48})
    with pytest.raises(
        ValueError,
        match=r"\['text', 'hidden_state_layer_0'\]\. The embeddings were made with output_type "
        r"'pre_dense' or 'hidden_states'; use target_type 'pre_dense'",
    ):
        check_training_data(data, _config(tmp_path))


def test_check_training_data_custom_columns(tmp_path):
    data = _data(2, {"emb": 16}).rename_column("text", "sentence")
    config = _config(tmp_path, text_column="sentence", final_embedding_column="emb")
    assert check_training_data(data, config) == 16


# --- load_student ------------------------------------------------------------------------------


def test_compute_fields_reach_the_student_loader(tmp_path, student, monkeypatch):
    from embedding_distillation.training import student as student_module

    seen = []
    original = student_module.load_sentence_transformer

    def spy(source, compute, **kwargs):
        seen.append((compute, kwargs))
        return original(source, compute, **kwargs)

    monkeypatch.setattr(student_module, "load_sentence_transformer", spy)
    config = _config(
        tmp_path, student_model=student, use_flash_attention=True, gradient_checkpointing=True
    )
    prepare_student(config, 32)
    [(compute, kwargs)] = seen
    assert compute == config.compute
    assert (compute.device, compute.use_flash_attention) == ("cpu", True)
    assert compute.gradient_checkpointing is True
    assert kwargs == {"for_training": True}
