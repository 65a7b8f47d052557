"""The hidden-state loss term, the targets collator and the loss each config builds."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.losses import EmbedDistillLoss, MSELoss

from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.losses import (
    LOSS_STATE_FILE,
    HiddenStateDistillLoss,
    SimilarityDistillLoss,
    TargetsCollator,
    build_loss,
    check_layer_map,
    similarity_matrix_loss,
    target_columns,
)
from embedding_distillation.training.student import check_training_data, prepare_student
from embedding_distillation.training.trainer import evaluation_column, train_student
from tests.conftest import make_sentences
from tests.training.conftest import training_config

FINAL = "teacher_embedding_final"


def _config(tmp_path, student: str, **kwargs) -> EmbeddingTrainerConfig:
    return training_config(tmp_path, student_model=student, **kwargs)


def _batch(model: SentenceTransformer, texts: list[str]) -> dict[str, torch.Tensor]:
    return model.preprocess(texts)


def _pooled_layers(model: SentenceTransformer, texts: list[str]) -> list[torch.Tensor]:
    """Hand-computed attention-mask means of every layer, straight from the Hugging Face model."""
    inputs = _batch(model, texts)
    with torch.no_grad():
        hidden = model[0].auto_model(**inputs, output_hidden_states=True).hidden_states
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    return [(h * mask).sum(1) / mask.sum(1) for h in hidden]


def test_collator_concatenates_the_targets_in_order(student):
    model = SentenceTransformer(student, device="cpu")
    collator = TargetsCollator(preprocess_fn=model.preprocess, target_columns=("a", "b", "a"))
    rows = [
        {"text": "the cat", "a": [1.0, 2.0], "b": np.array([3.0], dtype=np.float16)},
        {"text": "a dog runs", "a": [4.0, 5.0], "b": np.array([6.0], dtype=np.float16)},
    ]
    batch = collator(rows)
    expected = torch.tensor([[1, 2, 3, 1, 2], [4, 5, 6, 4, 5]], dtype=torch.float32)
    assert torch.equal(batch["label"], expected)
    assert "text_input_ids" in batch
    assert not any(key.startswith(("a_", "b_")) for key in batch)  # targets are not tokenized


@pytest.mark.parametrize(("loss_type", "cls"), [("mse", MSELoss), ("cosine", EmbedDistillLoss)])
def test_loss_type_reaches_the_loss(tmp_path, student, loss_type, cls):
    model = SentenceTransformer(student, device="cpu")
    loss = build_loss(model, _config(tmp_path, student, loss_type=loss_type), 32)
    assert type(loss) is cls
    assert loss.distance_metric == loss_type
    texts = make_sentences(4, seed=1)
    target = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    embedding = model.encode(texts, convert_to_tensor=True)
    expected = (
        torch.nn.functional.mse_loss(embedding, target)
        if loss_type == "mse"
        else (1 - torch.nn.functional.cosine_similarity(embedding, target)).mean()
    )
    with torch.no_grad():
        value = loss([_batch(model, texts)], target)
    assert torch.allclose(value, expected, atol=1e-5)


@pytest.mark.parametrize("layer_map", [{1: 2, 0: 0}, {2: 2, 0: 0}, {2: 3}])
def test_hidden_state_terms_match_hand_computed_values(tmp_path, student, layer_map):
    """Each mapped student layer is mean-pooled, projected and compared with its teacher layer."""
    model = SentenceTransformer(student, device="cpu")
    config = _config(tmp_path, student, hidden_state_layer_map=layer_map, hidden_state_weight=0.5)
    teacher_dims = {0: 32, 2: 48, 3: 48}
    loss = build_loss(model, config, 32, teacher_dims)
    assert isinstance(loss, HiddenStateDistillLoss)
    texts = make_sentences(5, seed=2)
    generator = torch.Generator().manual_seed(1)
    target = torch.randn(5, 32, generator=generator)
    layer_targets = {t: torch.randn(5, teacher_dims[t], generator=generator) for t in (0, 2, 3)}
    labels = torch.cat([target, *(layer_targets[t] for t in layer_map.values())], dim=1)

    with torch.no_grad():
        terms = loss([_batch(model, texts)], labels)

    pooled = _pooled_layers(model, texts)
    expected_hidden = []
    for s, t in layer_map.items():
        projection = loss.projections[str(s)]
        assert isinstance(projection, torch.nn.Linear) == (teacher_dims[t] != 32)
        with torch.no_grad():
            predicted = projection(pooled[s])
        expected_hidden.append(torch.nn.functional.mse_loss(predicted, layer_targets[t]))
    embedding = model.encode(texts, convert_to_tensor=True)
    assert set(terms) == {"embedding", "hidden_state"}
    assert torch.allclose(terms["embedding"], torch.nn.functional.mse_loss(embedding, target))
    assert torch.allclose(terms["hidden_state"], 0.5 * torch.stack(expected_hidden).mean())
    assert model[0].auto_model.config.output_hidden_states is False  # restored after the pass


def test_gradient_reaches_the_student_layers_up_to_the_mapped_one(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    config = _config(tmp_path, student, hidden_state_layer_map={1: 2})
    loss = build_loss(model, config, None, {2: 48})  # hidden-state term only
    texts = make_sentences(4, seed=3)
    labels = torch.randn(4, 48, generator=torch.Generator().manual_seed(2))

    terms = loss([_batch(model, texts)], labels)
    assert set(terms) == {"hidden_state"}
    terms["hidden_state"].backward()

    def grad(name: str) -> float:
        parameter = dict(model.named_parameters())[name]
        return 0.0 if parameter.grad is None else float(parameter.grad.abs().sum())

    # hidden state 1 is the output of encoder layer 0: layer 1 plays no part in it.
    assert grad("0.model.embeddings.word_embeddings.weight") > 0
    assert grad("0.model.encoder.layer.0.output.dense.weight") > 0
    assert grad("0.model.encoder.layer.1.output.dense.weight") == 0
    assert loss.projections["1"].weight.grad is not None


def test_training_on_hidden_states_lowers_the_hidden_state_term(tmp_path, student):
    """Targets: another student's pooled layers, linearly mapped to 48-d: learnable."""
    texts = make_sentences(32, seed=4)
    other = SentenceTransformer(student, device="cpu")
    pooled = _pooled_layers(other, texts)
    mixing = torch.randn(32, 48, generator=torch.Generator().manual_seed(3))
    data = Dataset.from_dict(
        {
            "text": texts,
            "hidden_state_layer_1": (pooled[1] @ mixing).numpy().tolist(),
            "hidden_state_layer_2": (pooled[2] @ mixing).numpy().tolist(),
        }
    )
    config = _config(
        tmp_path,
        student,
        hidden_state_layer_map={1: 1, 2: 2},
        num_epochs=8,
        learning_rate=3e-3,
        warmup_ratio=0,
        logging_steps=4,
    )
    assert check_training_data(data, config) is None  # no embedding target: hidden term alone
    model = prepare_student(config, None, data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unpad_inputs = model[0].unpad_inputs

    metrics = train_student(model, data, config)

    logged = [e["hidden_state"] for e in metrics["log_history"] if "hidden_state" in e]
    assert len(logged) == 8
    assert logged[-1] < 0.5 * logged[0]
    after = model.state_dict()
    assert not torch.equal(
        before["0.model.encoder.layer.1.output.dense.weight"],
        after["0.model.encoder.layer.1.output.dense.weight"],
    )
    assert model[0].auto_model.config.output_hidden_states is False
    assert unpad_inputs is None  # auto; the loss forces False while training, then restores
    assert model[0].unpad_inputs is None
    checkpoint = tmp_path / "checkpoints" / "checkpoint-32"
    assert (checkpoint / LOSS_STATE_FILE).exists()  # the projections are in the checkpoint
    assert evaluation_column(config, data.column_names) == "hidden_state_layer_2"


def test_embedding_and_hidden_state_terms_train_together(tmp_path, student):
    texts = make_sentences(16, seed=5)
    rng = np.random.default_rng(0)
    data = Dataset.from_dict(
        {
            "text": texts,
            FINAL: rng.normal(size=(16, 40)).astype(np.float16).tolist(),
            "hidden_state_layer_3": rng.normal(size=(16, 48)).astype(np.float16).tolist(),
        }
    )
    config = _config(tmp_path, student, hidden_state_layer_map={2: 3}, logging_steps=1)
    target_dim = check_training_data(data, config)
    assert target_dim == 40
    model = prepare_student(config, target_dim, data)

    metrics = train_student(model, data, config)

    first = next(e for e in metrics["log_history"] if "loss" in e)
    assert first["embedding"] > 0
    assert first["hidden_state"] > 0
    assert first["loss"] == pytest.approx(first["embedding"] + first["hidden_state"], rel=1e-3)
    assert target_columns(config, True) == (FINAL, "hidden_state_layer_3")
    assert evaluation_column(config, data.column_names) == FINAL


class _Crash(Exception):
    pass


def test_a_killed_hidden_state_run_resumes_to_the_same_weights(tmp_path, student, monkeypatch):
    """The projections live on the loss: checkpoints must carry them for an exact resume."""
    from transformers import TrainerCallback

    from embedding_distillation.training import trainer as trainer_module

    rng = np.random.default_rng(1)
    data = Dataset.from_dict(
        {
            "text": make_sentences(24, seed=6),
            "hidden_state_layer_2": rng.normal(size=(24, 48)).astype(np.float32).tolist(),
        }
    )
    base = _config(tmp_path, student, hidden_state_layer_map={2: 2}, num_epochs=2, save_steps=2)
    straight = prepare_student(base, None, data)
    train_student(straight, data, base)

    class CrashAfterStep3(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise _Crash()

    class CrashingTrainer(trainer_module.DistillationTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, callbacks=[CrashAfterStep3()], **kwargs)

    interrupted = replace(base, output_dir=str(tmp_path / "resumed"))
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "DistillationTrainer", CrashingTrainer)
        with pytest.raises(_Crash):
            train_student(prepare_student(interrupted, None, data), data, interrupted)
    assert (tmp_path / "resumed" / "checkpoint-2" / LOSS_STATE_FILE).exists()

    resume = replace(interrupted, resume_from_checkpoint=True)
    resumed = prepare_student(resume, None, data)
    metrics = train_student(resumed, data, resume)

    assert metrics["global_step"] == 6
    texts = make_sentences(4, seed=9)
    np.testing.assert_allclose(resumed.encode(texts), straight.encode(texts), atol=1e-5)


def test_resuming_from_a_checkpoint_without_projections_says_why(tmp_path, student):
    folder = tmp_path / "checkpoint-5"
    folder.mkdir()
    model = SentenceTransformer(student, device="cpu")
    loss = build_loss(
        model, _config(tmp_path, student, hidden_state_layer_map={1: 1}), None, {1: 8}
    )
    from embedding_distillation.training.losses import load_loss_state

    with pytest.raises(FileNotFoundError, match=r"has no hidden_state_projections\.pt: it was not"):
        load_loss_state(loss, folder)


# --- errors ------------------------------------------------------------------------------------


def test_unstored_teacher_layers_are_named(tmp_path, student):
    data = Dataset.from_dict({"text": ["a"], FINAL: [[0.0] * 4], "hidden_state_layer_0": [[0.0]]})
    config = _config(tmp_path, student, hidden_state_layer_map={1: 6, 2: 12})
    with pytest.raises(
        ValueError,
        match=r"hidden_state_layer_map \{1: 6, 2: 12\} needs teacher column\(s\) "
        r"\['hidden_state_layer_12', 'hidden_state_layer_6'\], but the training data has "
        r"\['hidden_state_layer_0'\]\. Map only stored teacher layers, or re-encode with "
        r"output_type 'hidden_states' and layer_indices that include \[6, 12\]",
    ):
        check_training_data(data, config)


def test_student_layers_out_of_range_fail_before_training(tmp_path, student):
    data = Dataset.from_dict({"text": ["a b"], "hidden_state_layer_1": [[0.0] * 48]})
    config = _config(tmp_path, student, hidden_state_layer_map={3: 1, 5: 1})
    with pytest.raises(
        ValueError,
        match=r"maps student layer\(s\) \[3, 5\], but the student has 2 layers: valid student "
        r"layers are 0 \(embeddings output\) to 2",
    ):
        prepare_student(config, None, data)


def test_check_layer_map_follows_student_init(tmp_path, teacher_plain):
    """A student cut to 2 of the teacher's 3 layers has layers 0..2 only."""
    config = _config(tmp_path, teacher_plain, student_init=(0, 2))
    model = prepare_student(config, None)
    check_layer_map(model, {2: 3})
    with pytest.raises(ValueError, match=r"student layer\(s\) \[3\]"):
        check_layer_map(model, {3: 3})


def test_the_seed_api_trains_with_the_hidden_state_term(tmp_path, student):
    import json

    from embedding_distillation.api import EmbeddingDistillationTrainer

    rng = np.random.default_rng(2)
    data = Dataset.from_dict(
        {
            "text": make_sentences(20, seed=8),
            FINAL: rng.normal(size=(20, 32)).astype(np.float32).tolist(),
            "hidden_state_layer_1": rng.normal(size=(20, 48)).astype(np.float32).tolist(),
        }
    )
    output = tmp_path / "trained"
    config = _config(
        tmp_path, student, output_dir=str(output), hidden_state_layer_map={1: 1}, logging_steps=1
    )

    metrics = EmbeddingDistillationTrainer(config).train(data)

    assert metrics["global_step"] == 3
    assert any("hidden_state" in e for e in metrics["log_history"])
    saved = json.loads((output / "config.json").read_text())
    assert not saved.get("output_hidden_states", False)  # the saved model is an ordinary one
    reloaded = SentenceTransformer(str(output), device="cpu")
    assert reloaded.get_embedding_dimension() == 32


def test_a_student_without_a_transformer_first_cannot_map_layers():
    from embedding_distillation.training.losses import student_layer_count

    with pytest.raises(
        ValueError,
        match=r"hidden_state_layer_map needs a student whose first module is a Hugging Face "
        r"Transformer, got Identity; set hidden_state_layer_map: null\.",
    ):
        student_layer_count([torch.nn.Identity()])  # type: ignore[arg-type]


# --- the similarity term -----------------------------------------------------------------------


def test_similarity_matrix_loss_matches_a_hand_computation():
    student = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    # Unit rows: student (0.6, 0.8), (1, 0), (0, 1); teacher e1, (e1 + e2)/sqrt(2), e3.
    s = 1 / 2**0.5
    student_cos = torch.tensor([[1.0, 0.6, 0.8], [0.6, 1.0, 0.0], [0.8, 0.0, 1.0]])
    teacher_cos = torch.tensor([[1.0, s, 0.0], [s, 1.0, 0.0], [0.0, 0.0, 1.0]])
    expected = ((student_cos - teacher_cos) ** 2).sum() / 9

    assert similarity_matrix_loss(student, teacher).item() == pytest.approx(expected.item())
    assert similarity_matrix_loss(teacher, teacher).item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("loss_type", ["mse", "cosine"])
def test_similarity_weight_adds_the_term_beside_the_embedding_loss(tmp_path, student, loss_type):
    model = SentenceTransformer(student, device="cpu")
    config = _config(tmp_path, student, loss_type=loss_type, similarity_weight=20.0)
    loss = build_loss(model, config, 32)
    assert isinstance(loss, SimilarityDistillLoss)
    plain = build_loss(model, replace(config, similarity_weight=0.0), 32)
    texts = make_sentences(6, seed=3)
    target = torch.randn(6, 32, generator=torch.Generator().manual_seed(2))

    with torch.no_grad():
        terms = loss([_batch(model, texts)], target)
        expected_embedding = plain([_batch(model, texts)], target)
        embedding = model.encode(texts, convert_to_tensor=True)

    assert set(terms) == {"embedding", "similarity"}
    assert torch.allclose(terms["embedding"], expected_embedding, atol=1e-6)
    assert torch.allclose(
        terms["similarity"], 20.0 * similarity_matrix_loss(embedding, target), atol=1e-6
    )


@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("mse", {"embedding", "hidden_state", "similarity"}),
        ("similarity", {"hidden_state", "similarity"}),  # no embedding term
    ],
)
def test_similarity_term_joins_the_hidden_state_loss(tmp_path, student, loss_type, expected):
    model = SentenceTransformer(student, device="cpu")
    config = _config(
        tmp_path,
        student,
        loss_type=loss_type,
        hidden_state_layer_map={2: 2},
        similarity_weight=3.0,
    )
    loss = build_loss(model, config, 32, {2: 32})
    texts = make_sentences(5, seed=4)
    generator = torch.Generator().manual_seed(3)
    target, layer = torch.randn(5, 32, generator=generator), torch.randn(5, 32, generator=generator)
    with torch.no_grad():
        terms = loss([_batch(model, texts)], torch.cat([target, layer], dim=1))
        embedding = model.encode(texts, convert_to_tensor=True)
    assert set(terms) == expected
    assert torch.allclose(
        terms["similarity"], 3.0 * similarity_matrix_loss(embedding, target), atol=1e-6
    )


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), True, "1"])
def test_a_bad_similarity_weight_is_refused(tmp_path, student, value):
    with pytest.raises(
        ValueError, match=r"similarity_weight must be a number >= 0, got .*; 0 turns the"
    ):
        _config(tmp_path, student, similarity_weight=value)


def test_loss_type_similarity_trains_on_the_similarity_term_alone(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    config = _config(tmp_path, student, loss_type="similarity", similarity_weight=5.0)
    loss = build_loss(model, config, 32)
    texts = make_sentences(6, seed=5)
    target = torch.randn(6, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        terms = loss([_batch(model, texts)], target)
        embedding = model.encode(texts, convert_to_tensor=True)
    assert set(terms) == {"similarity"}
    assert torch.allclose(
        terms["similarity"], 5.0 * similarity_matrix_loss(embedding, target), atol=1e-6
    )


def test_loss_type_similarity_needs_a_similarity_weight(tmp_path, student):
    with pytest.raises(
        ValueError,
        match=r"loss_type 'similarity' trains on the similarity-matrix term alone, so it needs "
        r"similarity_weight > 0, got 0\.0: set similarity_weight",
    ):
        _config(tmp_path, student, loss_type="similarity", similarity_weight=0.0)


def test_loss_type_similarity_needs_two_texts_a_batch(tmp_path, student):
    with pytest.raises(
        ValueError,
        match=r"loss_type 'similarity' compares the texts within a batch, so it needs "
        r"batch_size >= 2, got 1: raise batch_size",
    ):
        _config(tmp_path, student, loss_type="similarity", similarity_weight=20.0, batch_size=1)
