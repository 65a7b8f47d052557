"""The ``teacher_embeddings`` parameter group: layer indices as Kedro hands them over."""

import pytest

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.job import prepare_encoding


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


@pytest.mark.parametrize("given", [99, "99", [0, 99]])
def test_a_layer_beyond_the_teacher_is_refused_before_encoding(corpus, teacher_plain, given):
    """``--params teacher_embeddings.layer_indices=99`` against a 3-layer teacher."""
    config = EncodingConfig.from_params(
        {"teacher_model": teacher_plain, "output_type": "hidden_states", "layer_indices": given}
    )
    with pytest.raises(
        ValueError,
        match=(
            r"layer_indices \[(0, )?99\] include \[99\], but the teacher has 3 layers: valid "
            r"indices are 0 \(embeddings output\) to 3\."
        ),
    ):
        prepare_encoding(corpus, config, ComputeConfig(device="cpu"))


def test_the_last_layer_of_the_teacher_is_accepted(corpus, teacher_plain):
    config = EncodingConfig.from_params(
        {"teacher_model": teacher_plain, "output_type": "hidden_states", "layer_indices": 3}
    )
    assert prepare_encoding(corpus, config, ComputeConfig(device="cpu")).layers == [3]


def test_the_teacher_is_checked_before_the_corpus_is_scanned(corpus, teacher_plain, monkeypatch):
    """A wrong layer fails at once, not after a scan of every text of a large corpus."""
    from embedding_distillation.encoding import job

    def no_scan(*args, **kwargs):
        raise AssertionError("the corpus was scanned before the teacher was checked")

    monkeypatch.setattr(job, "scan_texts", no_scan)
    config = EncodingConfig.from_params(
        {"teacher_model": teacher_plain, "output_type": "hidden_states", "layer_indices": 99}
    )
    with pytest.raises(ValueError, match=r"but the teacher has 3 layers"):
        prepare_encoding(corpus, config, ComputeConfig(device="cpu"))
