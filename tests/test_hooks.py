"""The project's hooks: every parameter group is checked before the first node."""

import pytest
from datasets import Dataset

from embedding_distillation.hooks import ConfigCheckHook
from embedding_distillation.pipelines.distillation.pipeline import create_pipeline as distillation
from embedding_distillation.pipelines.teacher_embeddings.pipeline import (
    create_pipeline as teacher_embeddings,
)
from tests.conftest import NodeRecorder, base_parameters, run_in_process
from tests.test_dry_run import project  # noqa: F401 (the tiny project, as a fixture)


class Catalog(dict):
    """The two catalog calls the hook makes, over ``params:<group>`` entries."""

    def load(self, name):
        return self[name]


def _check(pipeline, **changed):
    catalog = Catalog({f"params:{name}": v for name, v in base_parameters().items()})
    for group, values in changed.items():
        catalog[f"params:{group}"] = {**catalog[f"params:{group}"], **values}
    ConfigCheckHook().before_pipeline_run({}, pipeline, catalog)


def test_the_base_parameters_pass():
    _check(teacher_embeddings() + distillation())


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"distillation": {"loss_type": "cosin"}}, "loss_type"),
        ({"distillation": {"hub_token": "hf_secret"}}, "distillation.hub_token is set"),
        ({"export": {"formats": ["onnx_fp8"]}}, "onnx_fp8"),
        ({"compute": {"device": "tpu"}}, "compute.device must be one of"),
    ],
)
def test_a_bad_value_of_any_group_of_the_run_is_refused(changed, message):
    with pytest.raises(ValueError, match=message) as raised:
        _check(teacher_embeddings() + distillation(), **changed)
    assert "hf_secret" not in str(raised.value)  # a token is never echoed


@pytest.mark.parametrize("pairs", [None, "present"])
def test_sts_dev_as_the_best_metric_needs_its_pairs_before_the_first_node(pairs):
    catalog = Catalog({f"params:{name}": v for name, v in base_parameters().items()})
    catalog["params:distillation"] = {
        **catalog["params:distillation"],
        "metric_for_best_model": "sts_dev",
    }
    catalog["sts_benchmark_dev"] = (
        None
        if pairs is None
        else Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "score": [1.0]})
    )
    hook = ConfigCheckHook()
    if pairs is None:
        with pytest.raises(
            ValueError, match=r"metric_for_best_model is 'sts_dev' but there are no"
        ):
            hook.before_pipeline_run({}, teacher_embeddings() + distillation(), catalog)
    else:
        hook.before_pipeline_run({}, teacher_embeddings() + distillation(), catalog)


def test_groups_the_run_does_not_take_are_not_checked():
    _check(teacher_embeddings(), distillation={"loss_type": "cosin"})


def test_kedro_run_stops_before_encoding_on_a_bad_distillation_value(project):  # noqa: F811
    recorder = NodeRecorder()
    with pytest.raises(ValueError, match="loss_type"):
        run_in_process(project, params="distillation.loss_type=cosin", hooks=[recorder])
    assert recorder.ran == []  # not even encode_corpus started
    assert not (project / "data" / "03_primary" / "teacher_embeddings").exists()
