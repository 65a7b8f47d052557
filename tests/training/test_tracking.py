"""Quality tracked while training: the evaluators, the best step kept, the head's warm-up."""

import logging

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import TrainerControl, TrainerState

from embedding_distillation.training.projection import projection_parameters
from embedding_distillation.training.student import prepare_student
from embedding_distillation.training.tracking import (
    BEST_STATE_FILE,
    BEST_WEIGHTS_FILE,
    METRIC_KEYS,
    BestStepCallback,
    TeacherAgreementEvaluator,
    TrainingEvaluation,
    best_metric,
    evaluation_curve,
)
from embedding_distillation.training.trainer import (
    HEAD_GROUP,
    DistillationTrainer,
    linear_schedule,
    split_head_groups,
    train_student,
    training_arguments,
)
from tests.conftest import make_sentences
from tests.training.conftest import training_config

FINAL = "teacher_embedding_final"


def _rows(texts: list[str], targets: np.ndarray) -> Dataset:
    return Dataset.from_dict({"text": texts, FINAL: targets.astype(np.float32).tolist()})


def _random_rows(count: int, dim: int = 40, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return _rows(make_sentences(count, seed=seed), rng.normal(size=(count, dim)))


def _sts_pairs(count: int = 12) -> Dataset:
    rng = np.random.default_rng(5)
    return Dataset.from_dict(
        {
            "sentence1": make_sentences(count, seed=11),
            "sentence2": make_sentences(count, seed=12),
            "score": rng.uniform(0, 5, size=count).tolist(),
        }
    )


# --- which metric picks the best step ----------------------------------------------------------


@pytest.mark.parametrize(("sts", "expected"), [(True, "sts_dev"), (False, "heldout_cosine")])
def test_the_default_metric_is_sts_dev_when_its_pairs_are_there(tmp_path, sts, expected):
    evaluation = TrainingEvaluation(heldout=_random_rows(4), sts_dev=_sts_pairs() if sts else None)
    assert best_metric(training_config(tmp_path), evaluation) == expected


def test_sts_dev_without_its_pairs_is_refused_before_training(tmp_path):
    config = training_config(tmp_path, metric_for_best_model="sts_dev")
    with pytest.raises(
        ValueError,
        match=r"metric_for_best_model is 'sts_dev' but there are no STS Benchmark dev pairs "
        r"\(data/01_raw/sts_benchmark/dev\.parquet, catalog entry sts_benchmark_dev\)\. "
        r"Fetch them with `python -m embedding_distillation\.demo`",
    ):
        best_metric(config, TrainingEvaluation(heldout=_random_rows(4)))


def test_heldout_cosine_without_heldout_rows_is_refused(tmp_path):
    config = training_config(tmp_path, metric_for_best_model="heldout_cosine")
    with pytest.raises(
        ValueError,
        match=r"no held-out rows with the training target .teacher_embedding_final. were given",
    ):
        best_metric(config, TrainingEvaluation(sts_dev=_sts_pairs()))


def test_an_unknown_metric_is_refused(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"metric_for_best_model must be one of \['sts_dev', 'heldout_cosine'\], got 'loss'",
    ):
        training_config(tmp_path, metric_for_best_model="loss")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("eval_steps", 0, r"eval_steps must be a positive integer or null, got 0"),
        ("projection_warmup_steps", -1, r"projection_warmup_steps must be an integer >= 0"),
        ("projection_learning_rate", -1e-4, r"projection_learning_rate must be a number >= 0"),
        ("allow_regression", "false", r"allow_regression must be true or false, got 'false'"),
        ("load_best_model_at_end", 1, r"load_best_model_at_end must be true or false, got 1"),
    ],
)
def test_bad_numbers_are_refused(tmp_path, name, value, message):
    with pytest.raises(ValueError, match=message):
        training_config(tmp_path, **{name: value})


def test_teacher_agreement_evaluator_matches_a_hand_computation():
    class Fixed:
        def encode(self, texts, **kwargs):
            return np.array([[1.0, 0.0], [0.0, 2.0]])

    targets = np.array([[1.0, 1.0], [0.0, 1.0]])
    metrics = TeacherAgreementEvaluator(["a", "b"], targets, batch_size=2)(Fixed())
    assert metrics["heldout_cosine"] == pytest.approx((2**-0.5 + 1) / 2)
    assert metrics["heldout_mse"] == pytest.approx((0 + 1 + 0 + 1) / 4)


# --- BestStepCallback --------------------------------------------------------------------------


def _evaluate(callback, model, step: int, value: float) -> None:
    state = TrainerState(global_step=step, max_steps=10)
    metrics = {METRIC_KEYS["sts_dev"]: value}
    callback.on_evaluate(None, state, TrainerControl(), model=model, metrics=metrics)


def test_the_best_step_is_restored_at_the_end_step_zero_included():
    model = torch.nn.Linear(2, 2)
    weights = {}
    callback = BestStepCallback("sts_dev", restore=True)
    for step, value in [(0, 0.80), (5, 0.78), (10, 0.79)]:
        with torch.no_grad():
            model.weight.fill_(step)
        weights[step] = model.weight.detach().clone()
        _evaluate(callback, model, step, value)

    callback.on_train_end(None, TrainerState(global_step=10), TrainerControl(), model=model)

    assert (callback.best_step, callback.best_value) == (0, 0.80)
    assert torch.equal(model.weight, weights[0])


def test_a_trained_step_must_beat_the_untrained_student_by_more_than_the_noise():
    model = torch.nn.Linear(2, 2)
    callback = BestStepCallback("sts_dev", restore=True)
    for step, value, best in [
        (0, 0.8000, 0),
        (5, 0.8015, 0),  # +0.15 points: within MIN_GAIN_OVER_UNTRAINED of step 0
        (10, 0.8025, 10),  # +0.25 points: a real gain
        (15, 0.8026, 15),  # between trained steps, any gain counts
    ]:
        _evaluate(callback, model, step, value)
        assert callback.best_step == best, step


def test_without_restore_the_last_step_stays():
    model = torch.nn.Linear(2, 2)
    callback = BestStepCallback("sts_dev", restore=False)
    _evaluate(callback, model, 0, 0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    _evaluate(callback, model, 10, 0.1)
    callback.on_train_end(None, TrainerState(global_step=10), TrainerControl(), model=model)
    assert torch.all(model.weight == 3.0)


def test_the_last_step_is_always_evaluated():
    callback = BestStepCallback("sts_dev", restore=True)
    control = TrainerControl()
    callback.on_step_end(None, TrainerState(global_step=9, max_steps=10), control)
    assert control.should_evaluate is False
    callback.on_step_end(None, TrainerState(global_step=10, max_steps=10), control)
    assert control.should_evaluate is True


def test_a_checkpoint_carries_the_best_step_to_a_resumed_run(tmp_path):
    model = torch.nn.Linear(2, 2)
    callback = BestStepCallback("sts_dev", restore=True)
    with torch.no_grad():
        model.weight.fill_(1.0)
    _evaluate(callback, model, 2, 0.9)
    with torch.no_grad():
        model.weight.fill_(7.0)
    (tmp_path / "checkpoint-4").mkdir()

    class Args:
        output_dir = str(tmp_path)

    state = TrainerState(global_step=4)
    callback.on_save(Args(), state, TrainerControl(), model=model)
    assert (tmp_path / "checkpoint-4" / BEST_WEIGHTS_FILE).is_file()
    assert (tmp_path / "checkpoint-4" / BEST_STATE_FILE).is_file()

    resumed = BestStepCallback("sts_dev", restore=True, resume_from=str(tmp_path / "checkpoint-4"))
    resumed.on_train_begin(None, state, TrainerControl(), model=model)
    resumed.on_train_end(None, TrainerState(global_step=8), TrainerControl(), model=model)
    assert (resumed.best_step, resumed.best_value) == (2, 0.9)
    assert torch.all(model.weight == 1.0)


def test_a_checkpoint_folder_left_by_another_run_does_not_lend_its_weights(tmp_path, caplog):
    model = torch.nn.Linear(2, 2)
    folder = tmp_path / "checkpoint-4"
    folder.mkdir()
    torch.save(
        {"weight": torch.full((2, 2), 9.0), "bias": torch.zeros(2)}, folder / BEST_WEIGHTS_FILE
    )
    callback = BestStepCallback("sts_dev", restore=True)
    with torch.no_grad():
        model.weight.fill_(3.0)
    _evaluate(callback, model, 4, 0.9)  # this run's best step is the checkpoint's own

    class Args:
        output_dir = str(tmp_path)

    callback.on_save(Args(), TrainerState(global_step=4), TrainerControl(), model=model)
    assert not (folder / BEST_WEIGHTS_FILE).exists()

    resumed = BestStepCallback("sts_dev", restore=True, resume_from=str(folder))
    resumed.on_train_begin(None, TrainerState(global_step=4), TrainerControl(), model=model)
    with torch.no_grad():
        model.weight.fill_(5.0)  # later steps, none better
    resumed.on_train_end(None, TrainerState(global_step=8), TrainerControl(), model=model)
    assert torch.all(model.weight == 3.0)


def test_resuming_from_a_checkpoint_without_a_best_step_warns(tmp_path, caplog):
    (tmp_path / "checkpoint-4").mkdir()
    callback = BestStepCallback("sts_dev", restore=True, resume_from=str(tmp_path / "checkpoint-4"))
    callback.on_train_begin(None, TrainerState(global_step=4), TrainerControl(), model=None)
    assert callback.best_step is None
    assert "picked from the resumed part only, without the untrained student" in caplog.text


def test_evaluation_curve_reads_the_trainer_log():
    log = [
        {"step": 0, METRIC_KEYS["sts_dev"]: 0.81, "eval_runtime": 1.5},
        {"step": 3, "loss": 0.2},
        {"step": 5, METRIC_KEYS["heldout_cosine"]: 0.7, "eval_runtime": 1.0},
    ]
    assert evaluation_curve(log) == [
        {"step": 0, "sts_dev": pytest.approx(81.0), "seconds": 1.5},
        {"step": 5, "heldout_cosine": 0.7, "seconds": 1.0},
    ]


# --- train_student with evaluation -------------------------------------------------------------


def test_a_run_that_only_moves_away_ends_with_the_student_it_started_from(tmp_path, student):
    """Held-out targets are the untrained student's own outputs: step 0 is the best step."""
    config = training_config(
        tmp_path,
        student_model=student,
        eval_steps=2,
        metric_for_best_model="heldout_cosine",
        learning_rate=5e-3,
    )
    model = prepare_student(config, 40)
    held_texts = make_sentences(8, seed=21)
    heldout = _rows(held_texts, model.encode(held_texts, convert_to_numpy=True))
    start = {k: v.clone() for k, v in model.state_dict().items()}

    metrics = train_student(
        model, _random_rows(40), config, TrainingEvaluation(heldout=heldout, sts_dev=_sts_pairs())
    )

    assert [point["step"] for point in metrics["evaluations"]] == [0, 2, 4, 5]
    assert all("sts_dev" in point and "heldout_cosine" in point for point in metrics["evaluations"])
    assert metrics["evaluations"][0]["heldout_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert (metrics["best_metric"], metrics["best_step"], metrics["kept_step"]) == (
        "heldout_cosine",
        0,
        0,
    )
    assert metrics["evaluation_seconds"] > 0
    for name, value in model.state_dict().items():
        assert torch.equal(value, start[name]), name


def test_eval_steps_longer_than_the_run_warns_once_and_evaluates_at_the_end(
    tmp_path, student, caplog
):
    config = training_config(tmp_path, student_model=student, eval_steps=50)
    model = prepare_student(config, 40)
    with caplog.at_level(logging.WARNING, logger="embedding_distillation"):
        metrics = train_student(
            model, _random_rows(16), config, TrainingEvaluation(heldout=_random_rows(4, seed=3))
        )
    warnings = [
        r for r in caplog.records if "eval_steps is 50 but the run has 2 steps" in r.message
    ]
    assert len(warnings) == 1
    assert [point["step"] for point in metrics["evaluations"]] == [0, 2]


def test_without_evaluation_data_nothing_is_evaluated(tmp_path, student):
    config = training_config(tmp_path, student_model=student, eval_steps=1)
    metrics = train_student(prepare_student(config, 40), _random_rows(16), config)
    assert "evaluations" not in metrics
    assert not any(key.startswith("eval_") for entry in metrics["log_history"] for key in entry)


# --- the head's own learning rate and warm-up --------------------------------------------------


def test_during_the_head_warm_up_the_backbone_does_not_change(tmp_path, student):
    config = training_config(tmp_path, student_model=student, projection_warmup_steps=5)
    data = _random_rows(40)
    model = prepare_student(config, 40, data)
    head_ids = {id(p) for p in projection_parameters(model)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    metrics = train_student(model, data, config)  # 5 steps: all of them warm-up

    assert metrics["global_step"] == 5
    for name, parameter in model.named_parameters():
        changed = not torch.equal(parameter, before[name])
        assert changed == (id(parameter) in head_ids), name


def test_the_optimizer_holds_the_two_learning_rates(tmp_path, student):
    config = training_config(
        tmp_path, student_model=student, learning_rate=1e-4, projection_learning_rate=3e-3
    )
    model = prepare_student(config, 40)
    head = projection_parameters(model)
    trainer = DistillationTrainer(
        model=model,
        args=training_arguments(config, 16),
        train_dataset=_random_rows(16),
        head=head,
        head_learning_rate=3e-3,
    )
    optimizer = trainer.create_optimizer()
    rates = {(bool(g.get(HEAD_GROUP)), g["lr"]) for g in optimizer.param_groups}
    assert rates == {(False, 1e-4), (True, 3e-3)}
    head_group = [g for g in optimizer.param_groups if g.get(HEAD_GROUP)]
    assert [p for g in head_group for p in g["params"]] == head
    body = sum(len(g["params"]) for g in optimizer.param_groups if not g.get(HEAD_GROUP))
    assert body == len(list(model.parameters())) - len(head)


def test_split_head_groups_keeps_each_groups_weight_decay():
    body, head = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    bias = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW(
        [{"params": [body, head], "weight_decay": 0.01}, {"params": [bias], "weight_decay": 0.0}],
        lr=1e-4,
    )
    split_head_groups(optimizer, [head], 5e-3)
    summary = [
        (len(g["params"]), g["weight_decay"], g["lr"], bool(g.get(HEAD_GROUP)))
        for g in optimizer.param_groups
    ]
    assert summary == [(1, 0.01, 1e-4, False), (1, 0.0, 1e-4, False), (1, 0.01, 5e-3, True)]


@pytest.mark.parametrize(
    ("step", "start", "expected"),
    [(0, 0, 0.0), (2, 0, 0.5), (4, 0, 1.0), (12, 0, 0.5), (20, 0, 0.0),
     (3, 5, 0.0), (5, 5, 0.0), (7, 5, 0.5), (9, 5, 1.0), (20, 5, 0.0)],
)  # fmt: skip
def test_linear_schedule_starts_after_the_head_warm_up(step, start, expected):
    assert linear_schedule(step, start=start, warmup=4, total=20) == pytest.approx(expected)


def test_head_options_without_a_head_are_ignored_with_a_warning(tmp_path, student, caplog):
    config = training_config(tmp_path, student_model=student, projection_warmup_steps=2)
    model = prepare_student(config, 32)  # as wide as the target: no head
    assert projection_parameters(model) == []
    with caplog.at_level(logging.WARNING, logger="embedding_distillation"):
        train_student(model, _random_rows(16, dim=32), config)
    assert (
        "this student has none (its output already has the target's width, or projection is pca"
        in caplog.text
    )


def test_a_projection_learning_rate_of_zero_keeps_the_head_where_it_started(tmp_path, student):
    config = training_config(tmp_path, student_model=student, projection_learning_rate=0.0)
    data = _random_rows(16)
    model = prepare_student(config, 40, data)
    head = projection_parameters(model)
    before = [p.detach().clone() for p in head]
    body = model[0].auto_model.embeddings.word_embeddings.weight.detach().clone()
    train_student(model, data, config)
    assert all(torch.equal(p, b) for p, b in zip(head, before, strict=True))
    assert not torch.equal(model[0].auto_model.embeddings.word_embeddings.weight, body)


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_a_killed_run_with_head_warm_up_and_tracking_resumes_to_the_same_result(
    tmp_path, student, monkeypatch
):
    """The split optimizer groups, the shifted schedule and the best step survive a resume."""
    from dataclasses import replace

    from transformers import TrainerCallback

    from embedding_distillation.training import trainer as trainer_module

    rows, heldout = _random_rows(48), _random_rows(8, seed=4)
    base = training_config(
        tmp_path,
        student_model=student,
        num_epochs=2,
        save_steps=4,
        eval_steps=2,
        projection_warmup_steps=3,
        projection_learning_rate=5e-3,
        metric_for_best_model="heldout_cosine",
        output_dir=str(tmp_path / "straight"),
    )
    evaluation = TrainingEvaluation(heldout=heldout)
    straight = prepare_student(base, 40, rows)
    expected = train_student(straight, rows, base, evaluation)

    class CrashAfterStep6(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise _Crash()

    class CrashingTrainer(trainer_module.DistillationTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, callbacks=[CrashAfterStep6()], **kwargs)

    interrupted = replace(base, output_dir=str(tmp_path / "resumed"))
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "DistillationTrainer", CrashingTrainer)
        with pytest.raises(_Crash):
            train_student(prepare_student(interrupted, 40, rows), rows, interrupted, evaluation)

    again = replace(interrupted, resume_from_checkpoint=True)
    resumed = prepare_student(again, 40, rows)
    metrics = train_student(resumed, rows, again, evaluation)

    assert metrics["global_step"] == expected["global_step"] == 12
    assert [p["step"] for p in metrics["evaluations"]] == [0, 2, 4, 6, 8, 10, 12]  # no repeat
    assert (metrics["best_step"], metrics["kept_step"]) == (
        expected["best_step"],
        expected["kept_step"],
    )
    texts = make_sentences(4, seed=9)
    np.testing.assert_allclose(resumed.encode(texts), straight.encode(texts), atol=1e-5)


def test_held_out_rows_without_the_target_give_no_cosine_to_pick_on(tmp_path):
    hidden_only = Dataset.from_dict({"text": ["a", "b"], "hidden_state_layer_3": [[0.0], [1.0]]})
    config = training_config(tmp_path)
    assert best_metric(config, TrainingEvaluation(heldout=hidden_only)) is None
    assert best_metric(config, TrainingEvaluation(heldout=hidden_only, sts_dev=_sts_pairs())) == (
        "sts_dev"
    )
    with pytest.raises(ValueError, match=r"no held-out rows with the training target"):
        best_metric(
            training_config(tmp_path, metric_for_best_model="heldout_cosine"),
            TrainingEvaluation(heldout=hidden_only, sts_dev=_sts_pairs()),
        )


def test_sts_dev_pairs_without_their_columns_are_refused(tmp_path, student):
    config = training_config(tmp_path, student_model=student)
    pairs = Dataset.from_dict({"s1": ["a"], "s2": ["b"], "score": [1.0]})
    with pytest.raises(
        ValueError,
        match=r"The STS Benchmark dev pairs lack column\(s\) \['sentence1', 'sentence2'\]; they "
        r"have \['s1', 's2', 'score'\]\. Rebuild them with `python -m embedding_distillation\.demo`\.",
    ):
        train_student(
            prepare_student(config, 40), _random_rows(8), config, TrainingEvaluation(sts_dev=pairs)
        )
