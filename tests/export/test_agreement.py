import numpy as np
import pytest

from embedding_distillation.export import AgreementError, ExportError, agreement, check_agreement

TEXTS = ["first text", "second text", "the odd one out", "fourth"]


def _pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(4, 8)).astype(np.float32)
    exported = reference * 3.0  # same directions, another scale: cosine 1
    exported[2] = reference[2] + np.eye(8, dtype=np.float32)[0] * 2.0
    return reference, exported


def test_agreement_finds_the_worst_text():
    reference, exported = _pair()
    found = agreement(reference, exported, TEXTS)
    r, e = reference[2].astype(np.float64), exported[2].astype(np.float64)
    expected = r @ e / (np.linalg.norm(r) * np.linalg.norm(e))
    assert found.worst_index == 2
    assert found.worst_text == "the odd one out"
    assert found.min_cosine == pytest.approx(expected, abs=1e-9)
    assert found.mean_cosine == pytest.approx((3 + expected) / 4, abs=1e-6)


def test_gate_passes_identical_embeddings():
    reference, _ = _pair()
    assert check_agreement(
        reference, reference.copy(), TEXTS, export_name="onnx"
    ).min_cosine == pytest.approx(1.0)


def test_gate_failure_names_export_cosine_threshold_and_text():
    reference, exported = _pair()
    cosine = agreement(reference, exported, TEXTS).min_cosine
    with pytest.raises(
        AgreementError,
        match=rf"The openvino export disagrees with the torch student: min cosine {cosine:.6f} is below the threshold 0.9999 .* worst on text #2: 'the odd one out'",
    ) as caught:
        check_agreement(reference, exported, TEXTS, export_name="openvino")
    assert isinstance(caught.value, ExportError)


def test_gate_quotes_a_long_worst_text_shortened():
    reference, exported = _pair()
    texts = [*TEXTS[:2], "word " * 100, TEXTS[3]]
    with pytest.raises(AgreementError, match=r"#2: 'word word .{150,}\.\.\.'\. The export"):
        check_agreement(reference, exported, texts, export_name="onnx")


def test_zero_vectors_agree_only_with_zero_vectors():
    reference = np.array([[0.0, 0.0], [1.0, 0.0]])
    found = agreement(reference, np.array([[0.0, 0.0], [0.0, 0.0]]), ["empty", "one"])
    assert (found.worst_index, found.min_cosine, found.mean_cosine) == (1, 0.0, 0.5)


def test_mismatched_shapes_are_refused():
    reference, _ = _pair()
    with pytest.raises(
        ValueError, match=r"shapes \(4, 8\) \(torch\) and \(3, 8\) \(export\) for 4 texts"
    ):
        agreement(reference, reference[:3], TEXTS)
