import pytest
import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.models import (
    backbone,
    for_inference,
    has_dense,
    load_sentence_transformer,
    looks_like_local_path,
    resolve_model_source,
    weights_fingerprint,
)


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("org/name", False),
        ("name", False),
        ("./model", True),
        ("/abs/model", True),
        ("data/01_raw/models/x", True),
        ("~/m", True),
    ],
)
def test_hub_ids_and_paths_are_told_apart(text, local):
    assert looks_like_local_path(text) is local


def test_missing_model_path_fails_with_the_path(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"teacher_model path '\./missing-model' does not exist"
    ):
        resolve_model_source("./missing-model", what="teacher_model")


def test_model_file_instead_of_folder_is_rejected(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="is a file; pass the folder"):
        resolve_model_source(str(path))


def test_hub_id_is_passed_through():
    assert resolve_model_source("org/name") == "org/name"


def test_backbone_stops_at_pooling(teacher_dense, teacher_plain):
    model = load_sentence_transformer(teacher_dense, ComputeConfig(device="cpu"))
    assert has_dense(model)
    assert not has_dense(SentenceTransformer(teacher_plain, device="cpu"))
    trunk = backbone(model)
    assert [type(m).__name__ for m in trunk] == ["Transformer", "Pooling"]
    assert trunk.get_embedding_dimension() == 48


def test_weights_fingerprint_changes_with_the_weights(teacher_dense):
    model = SentenceTransformer(teacher_dense, device="cpu")
    before = weights_fingerprint(model)
    assert before == weights_fingerprint(SentenceTransformer(teacher_dense, device="cpu"))
    next(model.parameters()).data[0, 0] += 1
    assert weights_fingerprint(model) != before


def test_for_inference_keeps_a_model_that_is_already_ready(student):
    model = SentenceTransformer(student, device="cpu")
    model.train()
    ready = for_inference(model, ComputeConfig(device="cpu"))
    assert ready is model
    assert not ready.training


def test_for_inference_casts_a_copy_and_leaves_the_callers_model(student):
    model = SentenceTransformer(student, device="cpu")
    texts = ["the cat runs", "a dog sleeps quickly"]
    ready = for_inference(model, ComputeConfig(device="cpu", use_bf16=True))
    assert ready is not model
    assert {p.dtype for p in ready.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    cosine = torch.nn.functional.cosine_similarity(
        torch.as_tensor(
            ready.encode(texts, convert_to_numpy=False, convert_to_tensor=True)
        ).float(),
        model.encode(texts, convert_to_tensor=True),
    )
    assert bool((cosine > 0.99).all())


def test_for_inference_compiles_a_copy(student, monkeypatch):
    from embedding_distillation import models

    compiled = []
    monkeypatch.setattr(models, "maybe_compile", lambda module, compute: compiled.append(module))
    model = SentenceTransformer(student, device="cpu")
    ready = for_inference(model, ComputeConfig(device="cpu", compile_model=True))
    assert ready is not model
    assert compiled == [ready[0]]
