"""EmbeddingTrainerConfig: Kedro parameters, derived values, and the hidden token."""

import dataclasses
import json

import pytest

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.extras import MissingExtraError
from embedding_distillation.training.config import EmbeddingTrainerConfig

TOKEN = "hf_SecretToken123"


def test_from_params_takes_device_and_precision_from_compute():
    config = EmbeddingTrainerConfig.from_params(
        {"student_model": "org/student", "batch_size": 16},
        {
            "device": "cpu",
            "batch_size": 256,
            "use_bf16": True,
            "compile_model": True,
            "use_flash_attention": True,
            "gradient_checkpointing": True,
        },
    )
    assert config.device == "cpu"
    assert config.use_bf16 is True
    assert config.use_fp16 is False
    assert config.compile_model is True
    assert config.use_flash_attention is True
    assert config.gradient_checkpointing is True
    assert config.batch_size == 16  # compute.batch_size is the encoding batch size


def test_from_params_without_compute_uses_the_defaults():
    config = EmbeddingTrainerConfig.from_params({"student_model": "org/student"}, None)
    assert config == EmbeddingTrainerConfig(student_model="org/student")
    assert config.batch_size == 32
    assert config.device == "auto"


@pytest.mark.parametrize(
    ("params", "compute", "message"),
    [
        (
            {"student_model": "org/student", "epochs": 2, "lr": 0.1},
            None,
            r"Unknown key\(s\) \['epochs', 'lr'\] in the 'distillation' parameters\. "
            r"Valid keys: \[.*'num_epochs'.*\]",
        ),
        (
            {"student_model": "org/student"},
            {"gpu": True},
            r"Unknown key\(s\) \['gpu'\] in the 'compute' parameters",
        ),
        (
            {"student_model": "org/student"},
            {"use_fp16": True, "use_bf16": True},
            "use_fp16 and compute.use_bf16 are both true",
        ),
    ],
)
def test_from_params_rejects_unknown_keys_by_name(params, compute, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingTrainerConfig.from_params(params, compute)


def test_compute_groups_the_device_options():
    config = EmbeddingTrainerConfig(
        student_model="org/student", device="cpu", use_fp16=True, batch_size=4
    )
    assert config.compute == ComputeConfig(device="cpu", batch_size=4, use_fp16=True)
    assert config.compute.precision == "fp16"


@pytest.mark.parametrize(
    ("target_type", "expected"), [("final", "my_final"), ("pre_dense", "my_pre_dense")]
)
def test_target_column_follows_target_type(target_type, expected):
    config = EmbeddingTrainerConfig(
        student_model="org/student",
        target_type=target_type,
        final_embedding_column="my_final",
        pre_dense_embedding_column="my_pre_dense",
    )
    assert config.target_column == expected


def test_hub_token_is_never_shown():
    config = EmbeddingTrainerConfig(
        student_model="org/student", push_to_hub=True, hub_model_id="me/model", hub_token=TOKEN
    )
    assert config.hub_token == TOKEN  # still usable
    assert TOKEN not in repr(config)
    assert TOKEN not in str(config)
    values = config.to_dict()
    assert values["hub_token"] == "***"
    assert TOKEN not in str(values)
    assert values["hub_model_id"] == "me/model"
    assert set(values) == {f.name for f in dataclasses.fields(EmbeddingTrainerConfig)}


def test_to_dict_without_a_token():
    assert EmbeddingTrainerConfig(student_model="org/student").to_dict()["hub_token"] is None


def test_a_token_in_the_parameters_is_refused_without_showing_it():
    params = {"student_model": "org/student", "hub_token": TOKEN}
    with pytest.raises(
        ValueError,
        match=(
            r"distillation\.hub_token is set, but a Hub token is not a parameter: parameters show "
            r"in kedro-viz and in run logs\. Remove hub_token from the distillation parameters "
            r"\(and from --params\) and put the token in conf/local/credentials\.yml as "
            r"'huggingface: \{token: \.\.\.\}' \(see conf/local/credentials\.example\.yml\), or "
            r"set HF_TOKEN\. The Python API keeps EmbeddingTrainerConfig\(hub_token=\.\.\.\)\."
        ),
    ) as error:
        EmbeddingTrainerConfig.from_params(params, None)
    assert TOKEN not in str(error.value)


def test_the_pipeline_passes_the_token_of_the_credentials():
    params = {"student_model": "org/student", "push_to_hub": True, "hub_model_id": "me/m"}
    assert EmbeddingTrainerConfig.from_params(params, None, hub_token=TOKEN).hub_token == TOKEN
    assert EmbeddingTrainerConfig.from_params(params, None).hub_token is None
    # A null left in an older parameters file holds no token: it is dropped.
    with_null = EmbeddingTrainerConfig.from_params({**params, "hub_token": None}, None)
    assert with_null.hub_token is None


def test_config_is_frozen():
    config = EmbeddingTrainerConfig(student_model="org/student")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 8  # type: ignore[misc]


# --- hidden-state loss options -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer_map", "message"),
    [
        ({}, r"hidden_state_layer_map must be a non-empty mapping, got \{\}\. Give a mapping"),
        ([3, 6], r"hidden_state_layer_map must be a non-empty mapping, got \[3, 6\]"),
        ({3: -1}, r"entries must be integers >= 0, got 3: -1\. Give a mapping"),
        ({"x": 6}, r"entries must be integers >= 0, got 'x': 6\."),
        ({True: 6}, r"entries must be integers >= 0, got True: 6\."),
    ],
)
def test_bad_hidden_state_layer_map_is_refused(layer_map, message):
    with pytest.raises(ValueError, match=message):
        EmbeddingTrainerConfig(student_model="org/student", hidden_state_layer_map=layer_map)


@pytest.mark.parametrize("weight", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_hidden_state_weight_must_be_a_positive_number(weight):
    with pytest.raises(ValueError, match=r"hidden_state_weight must be (a number > 0|finite)"):
        EmbeddingTrainerConfig(student_model="org/student", hidden_state_weight=weight)


def test_from_params_reads_a_command_line_layer_map():
    """``--params distillation.hidden_state_layer_map.3=6`` arrives with string keys."""
    config = EmbeddingTrainerConfig.from_params(
        {"student_model": "org/student", "hidden_state_layer_map": {"3": "6", 6: 12}}, None
    )
    assert config.hidden_state_layer_map == {3: 6, 6: 12}
    assert config.hidden_state_weight == 1.0


def test_hidden_state_options_default_off_and_pca_is_a_projection():
    config = EmbeddingTrainerConfig(student_model="org/student", projection="pca")
    assert config.hidden_state_layer_map is None
    assert config.projection == "pca"
    with pytest.raises(
        ValueError, match=r"projection must be one of \['learned', 'pca', 'none'\], got 'svd'"
    ):
        EmbeddingTrainerConfig(student_model="org/student", projection="svd")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [("0 2 4 6 8 11", (0, 2, 4, 6, 8, 11)), ([1, 3], (1, 3)), ("5", (5,))],
)
def test_from_params_reads_student_init_from_the_command_line(given, expected):
    # kedro run --params splits on commas: "distillation.student_init=0 2 4" is the way in.
    params = {"student_model": "org/teacher", "student_init": given}
    assert EmbeddingTrainerConfig.from_params(params, None).student_init == expected


def test_a_student_init_string_that_is_not_layer_numbers_is_refused():
    with pytest.raises(
        ValueError, match="student_init must be a non-empty list of layers, got 'every"
    ):
        EmbeddingTrainerConfig.from_params(
            {"student_model": "org/teacher", "student_init": "every other"}, None
        )


@pytest.mark.parametrize("hidden", [("skeletoken",), ("model2vec", "skeletoken")])
def test_a_static_student_without_the_static_extra_stops_before_any_model_loads(
    without_packages, hidden
):
    without_packages(*hidden)
    with pytest.raises(
        MissingExtraError,
        match=r"^student_type 'static' \(model2vec's distillation of 'org/teacher'\) needs the "
        rf"static extra \({', '.join(hidden)} (is|are) not installed\): pip install "
        r"'embedding-distillation\[static\]' \(in a clone of the project: pip install -e "
        r"'\.\[static\]'\), or use student_type: transformer\.$",
    ):
        EmbeddingTrainerConfig.from_params(
            {"student_model": "org/teacher", "student_type": "static"}, {"device": "cpu"}
        )
    assert EmbeddingTrainerConfig(student_model="org/teacher").student_type == "transformer"


def test_a_folder_that_is_static_already_needs_no_static_extra(tmp_path, without_packages):
    without_packages("model2vec", "skeletoken")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.StaticEmbedding"}]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    config = EmbeddingTrainerConfig(student_model=str(tmp_path), student_type="static")
    assert config.student_type == "static"
