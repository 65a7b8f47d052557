"""The ``teacher_embeddings`` parameter group: layer indices as Kedro hands them over."""

import pytest

from embedding_distillation.encoding.config import EncodingConfig


@pytest.mark.parametrize(
    ("given", "expected"),
    [(99, (99,)), ("99", (99,)), ("6 0 12", (0, 6, 12)), ([3, 0, 3], (0, 3)), (0, (0,))],
)
def test_layer_indices_take_one_layer_or_several(given, expected):
    params = {"teacher_model": "t", "output_type": "hidden_states", "layer_indices": given}
    assert EncodingConfig.from_params(params).layer_indices == expected
    assert EncodingConfig(teacher_model="t", layer_indices=given).layer_indices == expected


@pytest.mark.parametrize("given", [[], [-1], -1, "every other", 1.5, True, [0, True], {"a": 1}])
def test_bad_layer_indices_are_named_with_the_fix(given):
    with pytest.raises(
        ValueError,
        match=(
            r"teacher_embeddings\.layer_indices must be null \(all layers\), one layer number or "
            r"a non-empty list of layer numbers >= 0, got .*\. Layer 0 is the embeddings output"
        ),
    ):
        EncodingConfig.from_params({"teacher_model": "t", "layer_indices": given})
