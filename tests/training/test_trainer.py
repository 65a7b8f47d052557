"""Training core: arguments mapping and a real short run."""

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.training.config import EmbeddingTrainerConfig
from embedding_distillation.training.student import check_training_data, prepare_student
from embedding_distillation.training.trainer import train_student, training_arguments
from tests.conftest import make_sentences
from tests.training.conftest import training_config, training_rows

FINAL = "teacher_embedding_final"


_config = training_config
_data = training_rows


# --- training_arguments ------------------------------------------------------------------------


def test_training_arguments_map_every_field(tmp_path):
    config = _config(
        tmp_path,
        learning_rate=3e-4,
        num_epochs=2,
        batch_size=4,
        warmup_ratio=0.25,
        weight_decay=0.05,
        max_grad_norm=0.5,
        save_steps=7,
        logging_steps=3,
        seed=123,
        use_bf16=True,
        compile_model=True,
        gradient_checkpointing=True,
    )
    args = training_arguments(config, num_rows=50)
    assert args.output_dir == str(tmp_path / "checkpoints")
    assert args.learning_rate == 3e-4
    assert args.num_train_epochs == 2
    assert args.per_device_train_batch_size == 4
    assert args.warmup_steps == 6  # floor(0.25 * ceil(50 / 4) * 2) = floor(6.5)
    assert args.weight_decay == 0.05
    assert args.max_grad_norm == 0.5
    assert args.save_steps == 7
    assert args.logging_steps == 3
    assert args.seed == 123
    assert (args.bf16, args.fp16) == (True, False)
    assert args.torch_compile is True
    # Done on the model by train_student (training/checkpointing.py), for MPNet too.
    assert args.activation_checkpointing is False
    assert args.use_cpu is True
    assert args.report_to in ("none", [], ["none"])


def test_training_arguments_defaults(tmp_path):
    args = training_arguments(_config(tmp_path, device="auto"), num_rows=50)
    assert (args.fp16, args.bf16) == (False, False)
    assert args.torch_compile is False
    assert args.activation_checkpointing is False


def test_auto_device_on_a_cpu_machine_tells_the_trainer_it_is_a_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    args = training_arguments(_config(tmp_path, device="auto", use_bf16=True), num_rows=50)
    assert args.use_cpu is True
    assert args.dataloader_pin_memory is False


def test_bf16_trains_with_device_auto_on_a_cpu(tmp_path, student_dense, monkeypatch):
    # Before, "auto" reached the trainer as not-a-CPU and bf16 stopped it ("Your setup doesn't
    # support bf16/gpu").
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    config = _config(tmp_path, student_model=student_dense, device="auto", use_bf16=True)
    model = prepare_student(config, 40)
    metrics = train_student(model, _data(16, {FINAL: 40}), config)
    assert metrics["global_step"] == 2
    assert np.isfinite(metrics["train_loss"])


def test_fp16_maps_to_fp16(tmp_path):
    args = training_arguments(_config(tmp_path, device="auto", use_fp16=True), num_rows=50)
    assert (args.fp16, args.bf16) == (True, False)


@pytest.mark.parametrize(
    ("rows", "batch_size", "epochs", "ratio", "expected"),
    [
        (50, 4, 2, 0.25, 6),  # 26 steps, 6.5 -> 6
        (80, 8, 3, 0.1, 3),  # 30 steps
        (10, 8, 1, 0.9, 1),  # 2 steps, 1.8 -> 1: one step still at the full rate
        (5, 8, 1, 0.5, 0),  # a single step must not be warmup
        (100, 8, 1, 0.0, 0),
    ],
)
def test_warmup_steps_are_the_floor_of_ratio_times_steps(
    tmp_path, rows, batch_size, epochs, ratio, expected
):
    config = _config(tmp_path, batch_size=batch_size, num_epochs=epochs, warmup_ratio=ratio)
    warmup = training_arguments(config, rows).warmup_steps
    assert warmup == expected
    assert isinstance(warmup, int)  # a float below 1 would mean a ratio to transformers


# --- train_student -----------------------------------------------------------------------------


@pytest.mark.parametrize("warmup_ratio", [0.1, 0.5, 0.9])
def test_less_than_one_batch_trains_at_a_non_zero_rate(tmp_path, student_dense, warmup_ratio):
    config = _config(
        tmp_path, student_model=student_dense, warmup_ratio=warmup_ratio, logging_steps=1
    )
    data = _data(5, {FINAL: 40, "extra": 3})
    model = prepare_student(config, 40)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    metrics = train_student(model, data, config)

    assert metrics["global_step"] == 1
    assert set(metrics) == {
        "train_loss",
        "train_runtime",
        "train_samples_per_second",
        "global_step",
        "world_size",
        "log_history",
    }
    assert metrics["train_loss"] > 0
    assert any("loss" in entry for entry in metrics["log_history"])
    after = model.state_dict()
    assert not torch.equal(before["2.linear.weight"], after["2.linear.weight"])
    assert not torch.equal(
        before["0.model.embeddings.word_embeddings.weight"],
        after["0.model.embeddings.word_embeddings.weight"],
    )


def test_training_reduces_the_loss(tmp_path, student_dense):
    """Targets = the student's own embeddings after a fixed random rotation: learnable."""
    texts = make_sentences(16, seed=9)
    original = SentenceTransformer(student_dense, device="cpu")
    rotation, _ = torch.linalg.qr(torch.randn(40, 40, generator=torch.Generator().manual_seed(0)))
    targets = original.encode(texts, convert_to_tensor=True) @ rotation
    data = Dataset.from_dict({"text": texts, FINAL: targets.numpy().tolist()})

    def loss_after(epochs: int) -> float:
        config = _config(
            tmp_path,
            student_model=student_dense,
            loss_type="cosine",
            num_epochs=max(epochs, 1),
            learning_rate=5e-3,
            warmup_ratio=0,
        )
        model = prepare_student(config, 40)
        if epochs:
            train_student(model, data, config)
        embeddings = model.encode(texts, convert_to_tensor=True)
        return float(1 - torch.nn.functional.cosine_similarity(embeddings, targets).mean())

    assert loss_after(4) < 0.5 * loss_after(0)


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, student):
    from dataclasses import replace

    from transformers import TrainerCallback

    from embedding_distillation.training import trainer as trainer_module

    rows = Dataset.from_dict(
        {
            "text": make_sentences(48, seed=5),
            "teacher_embedding_final": [[float(i % 5) / 5] * 32 for i in range(48)],
        }
    )
    base = EmbeddingTrainerConfig(
        student_model=student,
        batch_size=8,
        num_epochs=2,
        save_steps=4,
        learning_rate=1e-3,
        device="cpu",
        output_dir=str(tmp_path / "straight"),
    )
    straight = prepare_student(base, 32)
    train_student(straight, rows, base)

    class CrashAfterStep6(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise _Crash()

    interrupted = replace(base, output_dir=str(tmp_path / "resumed"))
    original = trainer_module.DistillationTrainer

    class CrashingTrainer(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, callbacks=[CrashAfterStep6()], **kwargs)

    trainer_module.DistillationTrainer = CrashingTrainer
    try:
        with pytest.raises(_Crash):
            train_student(prepare_student(interrupted, 32), rows, interrupted)
    finally:
        trainer_module.DistillationTrainer = original
    assert (tmp_path / "resumed" / "checkpoint-4" / "optimizer.pt").exists()

    resumed = prepare_student(replace(interrupted, resume_from_checkpoint=True), 32)
    metrics = train_student(resumed, rows, replace(interrupted, resume_from_checkpoint=True))
    assert metrics["global_step"] == 12
    texts = make_sentences(4, seed=9)
    np.testing.assert_allclose(resumed.encode(texts), straight.encode(texts), atol=1e-5)


# --- every field reaches the run; float16 targets ------------------------------------------


def test_custom_columns_reach_the_training_run(tmp_path, student):
    """A decoy column under the default name has the wrong width: using it would fail."""
    rows = 12
    data = _data(rows, {"my_target": 32}).rename_column("text", "sentence")
    data = data.add_column(FINAL, [[0.0] * 7] * rows).add_column("text", ["decoy"] * rows)
    config = _config(
        tmp_path,
        student_model=student,
        text_column="sentence",
        final_embedding_column="my_target",
        logging_steps=1,
    )
    assert check_training_data(data, config) == 32
    model = prepare_student(config, 32, data)
    metrics = train_student(model, data, config)
    assert metrics["global_step"] == 2
    assert metrics["train_loss"] > 0


@pytest.mark.parametrize(
    ("output_type", "teacher", "options", "columns"),
    [
        ("final", "teacher_dense", {}, [FINAL]),
        (
            "hidden_states",
            "teacher_plain",
            {"hidden_state_layer_map": {1: 1, 2: 3}},
            ["hidden_state_layer_1", "hidden_state_layer_3"],
        ),
    ],
)
def test_float16_shards_train_memory_mapped(
    tmp_path, request, student, corpus, output_type, teacher, options, columns
):
    from embedding_distillation.api import TeacherEmbeddingsGenerator

    generator = TeacherEmbeddingsGenerator(
        request.getfixturevalue(teacher), device="cpu", embedding_dtype="float16", chunk_size=16
    )
    kwargs = {"layer_indices": [1, 3]} if output_type == "hidden_states" else {}
    data = generator.generate(
        corpus, output_type=output_type, output_dir=tmp_path / "shards", **kwargs
    )
    assert data.cache_files  # Arrow files on disk, memory-mapped
    for column in columns:
        assert data.features[column].feature.dtype == "float16"
    config = _config(tmp_path, student_model=student, logging_steps=1, **options)

    target_dim = check_training_data(data, config)
    model = prepare_student(config, target_dim, data)
    before = model[0].auto_model.embeddings.word_embeddings.weight.detach().clone()
    metrics = train_student(model, data, config)

    assert metrics["global_step"] == 7  # ceil(50 / 8)
    assert np.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
    assert not torch.equal(model[0].auto_model.embeddings.word_embeddings.weight, before)


def test_split_reaches_the_training_data(tmp_path, student):
    """A folder with two splits: ``split`` picks the one that is trained on."""
    from datasets import DatasetDict

    from embedding_distillation.api import EmbeddingDistillationTrainer

    folder = tmp_path / "two_splits"
    DatasetDict(
        {"train": _data(40, {FINAL: 32}, seed=1), "distil": _data(12, {FINAL: 32}, seed=2)}
    ).save_to_disk(str(folder))
    config = _config(
        tmp_path, student_model=student, split="distil", output_dir=str(tmp_path / "out")
    )
    metrics = EmbeddingDistillationTrainer(config).train(str(folder))
    assert metrics["global_step"] == 2  # ceil(12 / 8), not ceil(40 / 8)


@pytest.mark.parametrize("group_by_length", [True, False])
def test_group_by_length_picks_the_batch_sampler(tmp_path, student_dense, group_by_length):
    from sentence_transformers.base.sampler import DefaultBatchSampler

    from embedding_distillation.training import trainer as trainer_module
    from embedding_distillation.training.sampler import LengthGroupedBatchSampler

    made: list[object] = []
    original = trainer_module.DistillationTrainer.get_batch_sampler

    def spy(self, *args, **kwargs):
        sampler = original(self, *args, **kwargs)
        made.append(sampler)
        return sampler

    config = _config(tmp_path, student_model=student_dense, group_by_length=group_by_length)
    data = _data(20, {FINAL: 40})
    model = prepare_student(config, 40)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module.DistillationTrainer, "get_batch_sampler", spy)
        metrics = train_student(model, data, config)
    assert metrics["global_step"] == 3
    assert len(made) == 1 and isinstance(made[0], DefaultBatchSampler)
    assert isinstance(made[0], LengthGroupedBatchSampler) is group_by_length
