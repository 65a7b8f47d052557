"""The ONNX graph computes the whole student: equal to torch within 1e-5 on padded batches."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.attention import uses_fused_attention
from embedding_distillation.export import ExportError
from embedding_distillation.export.student_export import export_student
from tests.conftest import make_sentences
from tests.export.unexportable import NormalizeLongBatches

pytestmark = pytest.mark.slow  # each module's first test pays for a torch.onnx export

# Mixed lengths in one batch: every row but the longest is padded.
TEXTS = ["", "cat", *make_sentences(10, seed=11), " ".join(make_sentences(8, seed=12))]


def _torch_and_onnx(model: SentenceTransformer, path) -> tuple[np.ndarray, np.ndarray]:
    """Both embeddings of the same padded batch: sentence-transformers' own tokenization."""
    features = model.preprocess(TEXTS)
    with torch.no_grad():
        expected = model(dict(features))["sentence_embedding"].numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {i.name: features[i.name].numpy() for i in session.get_inputs()}
    (actual,) = session.run(["sentence_embedding"], feeds)
    return expected, actual


def test_onnx_equals_the_student_with_dense_head_and_projection(
    projected_student, projected_export
):
    assert [type(m).__name__ for m in projected_student] == [
        "Transformer",
        "Pooling",
        "Dense",
        "Dense",
        "Normalize",
    ]
    expected, actual = _torch_and_onnx(projected_student, projected_export / "onnx/model.onnx")
    assert actual.shape == (len(TEXTS), 48)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_onnx_graph_has_dynamic_batch_and_sequence_axes(projected_export):
    graph = onnx.load(str(projected_export / "onnx/model.onnx")).graph
    shapes = {
        value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*graph.input, *graph.output]
    }
    # the tiny BERT's tokenizer emits no token_type_ids, so the graph does not take them
    assert shapes == {
        "input_ids": ["batch", "sequence"],
        "attention_mask": ["batch", "sequence"],
        "sentence_embedding": ["batch", 48],
    }


def test_patched_mpnet_exports_and_equals_the_student(patched_mpnet, mpnet_export):
    expected, actual = _torch_and_onnx(patched_mpnet, mpnet_export / "onnx/model.onnx")
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    # the caller's model is not touched: it still runs the patched attention
    assert any(uses_fused_attention(m) for m in patched_mpnet.modules())


def test_token_type_ids_are_an_input_where_the_tokenizer_makes_them(tmp_path, student):
    from transformers import BertTokenizerFast

    model = SentenceTransformer(student, device="cpu")
    specials = {f"{n}_token": f"[{n.upper()}]" for n in ("unk", "pad", "cls", "sep", "mask")}
    model[0].processor = BertTokenizerFast(
        tokenizer_object=model.tokenizer.backend_tokenizer, model_max_length=64, **specials
    )
    assert "token_type_ids" in model.preprocess(["a"])
    export_student(model, tmp_path / "export", ["onnx"])
    session = onnxruntime.InferenceSession(str(tmp_path / "export/onnx/model.onnx"))
    assert [i.name for i in session.get_inputs()] == [
        "input_ids",
        "attention_mask",
        "token_type_ids",
    ]


def test_a_module_that_cannot_be_traced_is_named(tmp_path, student):
    base = SentenceTransformer(student, device="cpu")
    model = SentenceTransformer(modules=[base[0], base[1], NormalizeLongBatches()], device="cpu")
    with pytest.raises(
        ExportError,
        match=r"modules \['Transformer', 'Pooling', 'NormalizeLongBatches'\]\) to ONNX: module 2 \(NormalizeLongBatches\) of the student failed while torch.export traced it: \w+: .*The trained model is kept",
    ):
        export_student(model, tmp_path / "export", ["onnx"])
    assert list(tmp_path.iterdir()) == []  # no folder, no partial folder


def test_a_transformer_without_attention_mask_is_refused(student, monkeypatch):
    from embedding_distillation.export.onnx_graph import export_onnx

    model = SentenceTransformer(student, device="cpu")
    tokenize = model.preprocess
    monkeypatch.setattr(
        model, "preprocess", lambda texts: {"input_ids": tokenize(texts)["input_ids"]}
    )
    with pytest.raises(
        ExportError,
        match=r"Module 0 \(Transformer\) of the student does not tokenize into \['input_ids', 'attention_mask'\] \(its features: \['input_ids'\]\)",
    ):
        export_onnx(model, Path("/nonexistent/model.onnx"))
