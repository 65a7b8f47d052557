"""Several students: names, the merge over ``distillation``, config checks, failure isolation."""

import copy
import inspect
import json
import logging
import re

import pytest
from kedro.pipeline import Node

from embedding_distillation import compute
from embedding_distillation.students import (
    STUDENTS,
    StudentFailure,
    capture,
    check_students,
    failure_of,
    is_failure,
    isolated,
    student_names,
    student_options,
)

BASE = {
    "student_model": "org/student",
    "learning_rate": 2.0e-5,
    "student_init": [0, 2],
    "hidden_state_layer_map": {3: 6, 6: 12},
    "output_dir": "data/06_models/checkpoints",
}


# 1. names


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "mini-lm",
            "'mini-lm' is not a Python identifier (it names a Kedro namespace, datasets "
            "and folders); use letters, digits and underscores, e.g. mini_lm",
        ),
        (
            "1st",
            "'1st' is not a Python identifier (it names a Kedro namespace, datasets and "
            "folders); use letters, digits and underscores, e.g. student_1st",
        ),
        (
            "class",
            "'class' is a Python keyword, not a usable name (it names a Kedro namespace, "
            "datasets and folders); e.g. class_",
        ),
        (
            "",
            "'' is not a Python identifier (it names a Kedro namespace, datasets and "
            "folders); use letters, digits and underscores, e.g. minilm",
        ),
        (3, "3 is not a Python identifier"),
    ],
)
def test_a_name_that_is_not_an_identifier_is_refused(name, message):
    with pytest.raises(ValueError, match="^" + re.escape(f"students: {message}")):
        student_names({"students": {"minilm": {}, name: {}}})


def test_names_that_differ_only_in_case_are_refused():
    with pytest.raises(
        ValueError,
        match=r"^students: 'MiniLM' and 'minilm' differ only in case; their folders would be "
        r"the same on a case-insensitive file system \(macOS, Windows\)\. Rename one\.",
    ):
        student_names({"students": {"MiniLM": {}, "static": {}, "minilm": {}}})


@pytest.mark.parametrize("entry", [3, "static", [{"learning_rate": 1e-3}]])
def test_an_entry_that_is_not_a_mapping_is_refused(entry):
    with pytest.raises(
        ValueError,
        match=r"^students\.static must be a mapping of distillation keys to override, got "
        + re.escape(repr(entry)),
    ):
        student_names({"students": {"minilm": {}, "static": entry}})


def test_students_that_are_not_a_mapping_are_refused():
    with pytest.raises(ValueError, match=r"^students must be a mapping \{name: overrides"):
        student_names({"students": ["minilm", "static"]})


@pytest.mark.parametrize("parameters", [{}, {"students": None}, {"students": {}}])
def test_no_students_means_the_single_student_pipeline(parameters):
    assert student_names({"distillation": BASE, **parameters}) == ()


def test_names_keep_the_file_order_and_leave_null_entries_out():
    parameters = {STUDENTS: {"static": {}, "cut": None, "minilm": {"learning_rate": 1e-4}}}
    assert student_names(parameters) == ("static", "minilm")


# 2. the merge


@pytest.mark.parametrize(
    ("name", "base", "entry", "expected"),
    [
        pytest.param(
            "static",
            BASE,
            {"learning_rate": 3.0e-3, "student_type": "static"},
            {
                "student_model": "org/student",
                "learning_rate": 3.0e-3,
                "student_init": [0, 2],
                "hidden_state_layer_map": {3: 6, 6: 12},
                "output_dir": "data/06_models/checkpoints/static",
                "student_type": "static",
            },
            id="override-and-add",
        ),
        pytest.param(
            "cut",
            BASE,
            {"hidden_state_layer_map": {1: 2}},
            {
                "student_model": "org/student",
                "learning_rate": 2.0e-5,
                "student_init": [0, 2],
                "hidden_state_layer_map": {1: 2},
                "output_dir": "data/06_models/checkpoints/cut",
            },
            id="mapping-replaced-whole",
        ),
        pytest.param(
            "minilm",
            BASE,
            {"student_init": None},
            {
                "student_model": "org/student",
                "learning_rate": 2.0e-5,
                "student_init": None,
                "hidden_state_layer_map": {3: 6, 6: 12},
                "output_dir": "data/06_models/checkpoints/minilm",
            },
            id="null-sets-null",
        ),
        pytest.param(
            "minilm",
            BASE,
            {"output_dir": "elsewhere"},
            {
                "student_model": "org/student",
                "learning_rate": 2.0e-5,
                "student_init": [0, 2],
                "hidden_state_layer_map": {3: 6, 6: 12},
                "output_dir": "elsewhere",
            },
            id="explicit-output-dir-kept",
        ),
        pytest.param(
            "minilm",
            {"student_model": "org/student", "output_dir": "checkpoints/"},
            {},
            {"student_model": "org/student", "output_dir": "checkpoints/minilm"},
            id="empty-entry",
        ),
        pytest.param(
            "minilm",
            {"student_model": "org/student"},
            {},
            {"student_model": "org/student", "output_dir": "./trained_model/minilm"},
            id="output-dir-from-the-config-default",
        ),
        pytest.param(
            "minilm",
            {"student_model": "org/student", "output_dir": None},
            {},
            {"student_model": "org/student", "output_dir": "./trained_model/minilm"},
            id="null-output-dir-of-the-base",
        ),
    ],
)
def test_student_options_merge_the_entry_over_the_base(name, base, entry, expected):
    base_before, entry_before = copy.deepcopy(base), copy.deepcopy(entry)
    options = student_options(base, name, entry)
    assert options == expected
    assert (base, entry) == (base_before, entry_before)
    if "hidden_state_layer_map" in options:
        options["hidden_state_layer_map"][99] = 99
        assert 99 not in base["hidden_state_layer_map"]  # no nested value is shared


def test_student_options_refuse_a_bad_name_or_entry():
    with pytest.raises(ValueError, match=r"^students: 'mini-lm' is not a Python identifier"):
        student_options(BASE, "mini-lm", {})
    with pytest.raises(ValueError, match=r"^students\.minilm must be a mapping"):
        student_options(BASE, "minilm", None)


@pytest.mark.parametrize(
    ("base", "entries", "message"),
    [
        (
            {**BASE, "push_to_hub": True, "hub_model_id": "me/model"},
            {"a": {}, "b": {"learning_rate": 1e-4}, "c": {"hub_model_id": "me/c"}},
            r"^students\.a and students\.b both push to hub_model_id 'me/model': one would "
            r"overwrite the other's model\. Give each student its own hub_model_id\.",
        ),
        (
            BASE,
            {
                "a": {},
                "b": {"push_to_hub": True, "hub_model_id": "me/m"},
                "c": {},
                "d": {"push_to_hub": True, "hub_model_id": "me/m"},
            },
            r"^students\.b and students\.d both push to hub_model_id 'me/m'",
        ),
        (
            BASE,
            {"a": {"output_dir": "ckpt/"}, "b": {"output_dir": "ckpt"}},
            r"^students\.a and students\.b both save checkpoints to output_dir 'ckpt': one "
            r"would resume from or delete the other's checkpoints",
        ),
    ],
)
def test_students_sharing_a_hub_repo_or_checkpoints_are_refused(base, entries, message):
    with pytest.raises(ValueError, match=message):
        check_students(base, entries, None)


def test_the_same_hub_model_id_without_push_to_hub_is_accepted():
    base = {**BASE, "hub_model_id": "me/model"}
    configs = check_students(base, {"a": {}, "b": {"push_to_hub": True}}, None)
    assert [c.push_to_hub for c in configs.values()] == [False, True]


# 3. the configs


def test_check_students_builds_each_config_from_its_merged_options():
    entries = {"static": {"learning_rate": 3.0e-3}, "gone": None, "minilm": {}}
    configs = check_students(BASE, entries, {"device": "cpu", "use_bf16": True})
    assert list(configs) == ["static", "minilm"]
    assert configs["static"].learning_rate == 3.0e-3
    assert configs["minilm"].learning_rate == 2.0e-5
    assert configs["static"].output_dir == "data/06_models/checkpoints/static"
    assert configs["minilm"].output_dir == "data/06_models/checkpoints/minilm"
    assert configs["static"].hidden_state_layer_map == {3: 6, 6: 12}
    assert {(c.device, c.use_bf16) for c in configs.values()} == {("cpu", True)}


def test_an_unknown_key_names_the_student_the_key_and_the_valid_keys():
    with pytest.raises(
        ValueError,
        match=r"^Unknown key\(s\) \['lerning_rate'\] in the 'students\.static' parameters\. "
        r"Valid keys: \[.*'learning_rate'.*\]\.$",
    ):
        check_students(BASE, {"minilm": {}, "static": {"lerning_rate": 3.0e-3}}, None)


def test_an_unknown_key_of_the_base_names_the_distillation_group():
    with pytest.raises(
        ValueError,
        match=r"^Unknown key\(s\) \['epochs'\] in the 'distillation' parameters \(the base of "
        r"every student\)\. Valid keys: \[.*'num_epochs'.*\]\.$",
    ):
        check_students({**BASE, "epochs": 2}, {"minilm": {}}, None)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"learning_rate": -1}, r"^students\.static: learning_rate must be > 0, got -1\.$"),
        (
            {"loss_type": "cosine_similarity"},
            r"^students\.static: loss_type must be one of \['mse', 'cosine', 'similarity'\], "
            r"got 'cosine_similarity'\.$",
        ),
        (
            {"student_model": None},
            r"^students\.static: student_model is required: a Hub id or a local model folder\.$",
        ),
        (
            {"hub_token": "hf_secret"},
            r"^students\.static\.hub_token is set, but a Hub token is not a parameter: .* "
            r"Remove hub_token from the students\.static parameters",
        ),
    ],
)
def test_a_bad_value_names_the_student(entry, message):
    with pytest.raises(ValueError, match=message) as error:
        check_students(BASE, {"minilm": {}, "static": entry}, None)
    assert "hf_secret" not in str(error.value)


def test_a_bad_compute_group_is_reported_too():
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['gpu'\] in the 'compute' parameters"):
        check_students(BASE, {"minilm": {}}, {"gpu": True})


# 4. failure isolation


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def releases(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    calls: list[None] = []
    monkeypatch.setattr(compute, "release_memory", lambda: calls.append(None))
    return calls


class Recorder:
    """A node function that records its calls and returns or raises what it was given."""

    def __init__(self, outcome: object = ("model", {"loss": 0.5})) -> None:
        self.outcome = outcome
        self.calls: list[tuple] = []

    def train_student_model(self, train_embeddings, options):
        self.calls.append((train_embeddings, options))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


FAILED_TRAINING = StudentFailure(
    student="static",
    step="train_student_model",
    error="OutOfMemoryError",
    message="CUDA out of memory",
    traceback_tail="...",
)


def test_a_failure_input_is_passed_on_without_calling(one_process, releases, caplog):
    recorder = Recorder()
    export = isolated(
        recorder.train_student_model, student="static", step="export_student_model", outputs=2
    )
    with caplog.at_level(logging.INFO, logger="embedding_distillation.students"):
        by_position = export(FAILED_TRAINING.record(), {"formats": ["onnx"]})
        by_name = export("rows", options=FAILED_TRAINING.record())
    assert by_position == by_name == (FAILED_TRAINING.record(), FAILED_TRAINING.record())
    assert recorder.calls == []
    assert releases == []
    assert (
        caplog.messages
        == [
            "static: export_student_model skipped: static failed at train_student_model: "
            "OutOfMemoryError: CUDA out of memory"
        ]
        * 2
    )


def test_an_exception_becomes_a_failure_record_for_every_output(one_process, releases, caplog):
    recorder = Recorder(ValueError("text_column 'missing' is not a column of the rows"))
    train = isolated(
        recorder.train_student_model, student="b", step="train_student_model", outputs=2
    )
    with caplog.at_level(logging.INFO, logger="embedding_distillation.students"):
        model, metrics = train("rows", {"text_column": "missing"})
    assert model == metrics
    assert is_failure(model)
    failure = StudentFailure.from_record(model)
    assert (failure.student, failure.step, failure.error, failure.message) == (
        "b",
        "train_student_model",
        "ValueError",
        "text_column 'missing' is not a column of the rows",
    )
    assert "in train_student_model" in failure.traceback_tail
    assert "raise self.outcome" in failure.traceback_tail
    assert recorder.calls == [("rows", {"text_column": "missing"})]
    assert releases == [None]
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert error.getMessage() == (
        "b failed at train_student_model: ValueError: text_column 'missing' is not a column of "
        "the rows; the other students go on"
    )
    assert error.exc_info is not None


def test_one_output_is_the_record_itself(one_process, releases):
    recorder = Recorder(RuntimeError("no space left"))
    push = isolated(recorder.train_student_model, student="a", step="push_student_model")
    record = push("rows", {})
    assert StudentFailure.from_record(record).describe() == (
        "a failed at push_student_model: RuntimeError: no space left"
    )


def test_a_successful_call_returns_its_value_and_keeps_the_signature(one_process, releases):
    recorder = Recorder()
    train = isolated(
        recorder.train_student_model, student="a", step="train_student_model", outputs=2
    )
    assert train("rows", {"learning_rate": 1e-4}) == ("model", {"loss": 0.5})
    assert releases == []
    assert train.__name__ == "train_student_model"
    assert inspect.signature(train) == inspect.signature(recorder.train_student_model)


def test_kedro_binds_the_wrapped_node_and_saves_the_records(one_process, releases):
    recorder = Recorder(ValueError("bad rows"))
    node = Node(
        func=isolated(
            recorder.train_student_model, student="a", step="train_student_model", outputs=2
        ),
        inputs={"options": "student_options", "train_embeddings": "train_embeddings"},
        outputs=["student_model", "training_metrics"],
    )
    outputs = node.run({"student_options": {"seed": 1}, "train_embeddings": "rows"})
    assert recorder.calls == [("rows", {"seed": 1})]
    assert set(outputs) == {"student_model", "training_metrics"}
    assert all(StudentFailure.from_record(v).message == "bad rows" for v in outputs.values())


@pytest.mark.parametrize("stop", [KeyboardInterrupt(), SystemExit(1)])
def test_ctrl_c_and_exit_propagate(one_process, releases, stop):
    train = isolated(Recorder(stop).train_student_model, student="a", step="train_student_model")
    with pytest.raises(type(stop)):
        train("rows", {})
    assert releases == []


def test_several_processes_re_raise(monkeypatch, releases):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    train = isolated(
        Recorder(ValueError("rank 1 failed")).train_student_model,
        student="a",
        step="train_student_model",
    )
    with pytest.raises(ValueError, match="^rank 1 failed$"):
        train("rows", {})
    with pytest.raises(ValueError, match="^rank 1 failed$"):
        capture(
            "a", "evaluate_student", Recorder(ValueError("rank 1 failed")).train_student_model, 1, 2
        )
    assert releases == []


def test_a_node_without_outputs_cannot_be_isolated():
    with pytest.raises(
        ValueError, match=r"^isolated\(push_student_model\): outputs must be at least 1, got 0"
    ):
        isolated(Recorder().train_student_model, student="a", step="push_student_model", outputs=0)


def test_capture_returns_the_result_or_the_failure(one_process, releases):
    assert capture("a", "train_student_model", Recorder().train_student_model, "rows", {}) == (
        ("model", {"loss": 0.5}),
        None,
    )
    assert releases == []
    recorder = Recorder(MemoryError("out of memory"))
    result, failure = capture(
        "b", "evaluate_student", recorder.train_student_model, "rows", options={}
    )
    assert result is None
    assert recorder.calls == [("rows", {})]
    assert (failure.student, failure.step, failure.error, failure.message) == (
        "b",
        "evaluate_student",
        "MemoryError",
        "out of memory",
    )
    assert releases == [None]
    with pytest.raises(KeyboardInterrupt):
        capture("a", "train_student_model", Recorder(KeyboardInterrupt()).train_student_model, 1, 2)


def test_a_failure_record_survives_json():
    record = json.loads(json.dumps(FAILED_TRAINING.record()))
    assert record == {
        "failed": {
            "student": "static",
            "step": "train_student_model",
            "error": "OutOfMemoryError",
            "message": "CUDA out of memory",
            "traceback_tail": "...",
        }
    }
    assert StudentFailure.from_record(record) == FAILED_TRAINING


@pytest.mark.parametrize(
    "value",
    [
        None,
        "failed",
        {"failed": True},
        {"failed": {"student": "a"}},
        {**FAILED_TRAINING.record(), "sts_benchmark": 0.8},
        {"sts_benchmark": 0.8, "failed": []},
    ],
)
def test_other_values_are_not_failures(value):
    assert not is_failure(value)
    assert failure_of(value, "rows") is None
    with pytest.raises(ValueError, match="^Not a student failure record: "):
        StudentFailure.from_record(value)


def test_failure_of_finds_the_first_record():
    other = StudentFailure("static", "export_student_model", "OSError", "disk full").record()
    assert failure_of("model", None, {"loss": 1.0}, FAILED_TRAINING.record(), other) == (
        FAILED_TRAINING.record()
    )
    assert failure_of() is None
