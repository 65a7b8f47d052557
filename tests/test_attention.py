"""Attention kernels: the flash-attention choice, and MPNet's attention through sdpa."""

import copy
import logging

import pytest
import torch
import transformers.utils
from sentence_transformers import SentenceTransformer

from embedding_distillation.attention import (
    attention_implementation,
    model_class,
    use_fused_attention,
    uses_fused_attention,
)
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.models import for_inference, load_sentence_transformer
from tests.conftest import make_sentences, training_gradients

FLASH = ComputeConfig(use_flash_attention=True)
CUDA = torch.device("cuda")

# texts of very different lengths, so that most rows of a batch are padded
TEXTS = ["a", *make_sentences(5, seed=2), " ".join(make_sentences(6, seed=3))]


def _plain(source: str) -> SentenceTransformer:
    """The model as sentence-transformers loads it: transformers' eager MPNet attention."""
    return SentenceTransformer(source, device="cpu").eval()


def _fused(source: str) -> SentenceTransformer:
    model = _plain(source)
    use_fused_attention(model)
    return model


def _attention_modules(model: SentenceTransformer) -> list[torch.nn.Module]:
    return [layer.attention.attn for layer in model[0].auto_model.encoder.layer]


@pytest.fixture
def flash_installed(monkeypatch):
    monkeypatch.setattr(transformers.utils, "is_flash_attn_2_available", lambda: True)


def test_without_the_option_transformers_chooses(student):
    assert attention_implementation(ComputeConfig(), CUDA, student) is None


def test_flash_attention_falls_back_to_sdpa_with_one_warning_on_cpu(caplog, student):
    with caplog.at_level(logging.WARNING):
        assert attention_implementation(FLASH, torch.device("cpu"), student) is None
    assert (
        sum("flash-attn is not usable here (device cpu" in r.message for r in caplog.records) == 1
    )


def test_flash_attention_where_usable_and_supported(flash_installed, caplog, student):
    with caplog.at_level(logging.WARNING):
        assert attention_implementation(FLASH, CUDA, student) == "flash_attention_2"
    assert not caplog.records


def test_flash_attention_is_not_asked_of_mpnet(flash_installed, caplog, mpnet_student):
    """transformers would stop the load: MPNet has no flash-attention path there."""
    with caplog.at_level(logging.WARNING):
        assert attention_implementation(FLASH, CUDA, mpnet_student) is None
    assert (
        sum(
            "transformers has no flash-attention path for MPNetModel" in r.message
            for r in caplog.records
        )
        == 1
    )


def test_model_class_comes_from_the_config(mpnet_student, student, tmp_path):
    assert model_class(mpnet_student).__name__ == "MPNetModel"
    assert model_class(student).__name__ == "BertModel"
    assert model_class(str(tmp_path)) is None  # no config here: transformers decides


def test_loading_runs_mpnet_attention_through_sdpa(mpnet_student, caplog):
    with caplog.at_level(logging.INFO, logger="embedding_distillation"):
        model = load_sentence_transformer(mpnet_student, ComputeConfig(device="cpu"))
    assert all(uses_fused_attention(module) for module in _attention_modules(model))
    assert "3 self-attention modules run through PyTorch's scaled_dot_product_attention" in (
        caplog.text
    )
    training = load_sentence_transformer(
        mpnet_student, ComputeConfig(device="cpu"), for_training=True
    )
    assert all(uses_fused_attention(module) for module in _attention_modules(training))


def test_other_architectures_are_left_alone(student):
    model = _plain(student)
    assert use_fused_attention(model) == 0
    assert not any(uses_fused_attention(module) for module in model.modules())


def test_fused_attention_gives_the_eager_embeddings(mpnet_student):
    plain = _plain(mpnet_student).encode(TEXTS, convert_to_tensor=True)
    fused = _fused(mpnet_student).encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)


def test_fused_attention_gives_the_eager_hidden_states(mpnet_student):
    plain, fused = _plain(mpnet_student), _fused(mpnet_student)
    features = plain.preprocess(TEXTS)
    with torch.no_grad():
        expected = plain[0].auto_model(**features, output_hidden_states=True).hidden_states
        got = fused[0].auto_model(**features, output_hidden_states=True).hidden_states
    assert len(got) == len(expected) == 4
    for layer, (a, b) in enumerate(zip(got, expected, strict=True)):
        mask = features["attention_mask"].bool()  # padded positions are not compared
        torch.testing.assert_close(a[mask], b[mask], rtol=1e-5, atol=1e-5, msg=f"layer {layer}")


def test_a_texts_embedding_does_not_depend_on_its_batch_mates(mpnet_student):
    model = _fused(mpnet_student)
    alone = model.encode(TEXTS[:1], convert_to_tensor=True)
    with_long_ones = model.encode(TEXTS, batch_size=len(TEXTS), convert_to_tensor=True)[:1]
    torch.testing.assert_close(with_long_ones, alone, rtol=1e-5, atol=1e-6)


def test_fused_attention_gives_the_eager_gradients(mpnet_student):
    plain, fused = _plain(mpnet_student), _fused(mpnet_student)
    for model in (plain, fused):  # dropout off: the two draw their masks differently
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    expected, got = training_gradients(plain, TEXTS), training_gradients(fused, TEXTS)
    assert expected.keys() == got.keys() and len(got) > 10
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-7, msg=name)


def test_attention_dropout_applies_while_training(mpnet_student):
    model = _fused(mpnet_student)
    attention = _attention_modules(model)[0]
    attention.dropout.p = 0.5
    hidden = torch.randn(2, 5, 32)
    attention.train()
    torch.manual_seed(0)
    first = attention(hidden)[0]
    second = attention(hidden)[0]
    assert not torch.allclose(first, second)  # new dropout masks
    attention.eval()
    torch.testing.assert_close(attention(hidden)[0], attention(hidden)[0])


def test_attention_weights_asked_for_come_from_the_eager_forward(mpnet_student):
    model = _fused(mpnet_student)
    features = model.preprocess(TEXTS[:2])
    with torch.no_grad():
        output = model[0].auto_model(**features, output_attentions=True)
    assert len(output.attentions) == 3
    sums = output.attentions[0].sum(-1)  # softmax rows over keys
    torch.testing.assert_close(sums, torch.ones_like(sums))


def test_bfloat16_autocast_trains_through_fused_attention(mpnet_student):
    """Under autocast the projections give bfloat16 while the bias and mask are float32."""
    model = _fused(mpnet_student)
    model.train()
    features = model.preprocess(TEXTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(dict(features))["sentence_embedding"].float().pow(2).sum()
    loss.backward()
    grad = model[0].auto_model.encoder.layer[0].attention.attn.q.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_bfloat16_inference_matches_float32_closely(mpnet_student):
    compute = ComputeConfig(device="cpu", use_bf16=True)
    model = load_sentence_transformer(mpnet_student, compute)
    assert next(model.parameters()).dtype == torch.bfloat16
    low = model.encode(TEXTS, convert_to_tensor=True).float()
    full = _plain(mpnet_student).encode(TEXTS, convert_to_tensor=True)
    assert torch.nn.functional.cosine_similarity(low, full).min() > 0.99


def test_switching_is_idempotent_and_keeps_the_weights(mpnet_student, tmp_path):
    model = _plain(mpnet_student)
    keys = list(model.state_dict())
    assert use_fused_attention(model) == 3
    assert use_fused_attention(model) == 0
    assert list(model.state_dict()) == keys
    model.save(str(tmp_path / "saved"))
    reloaded = _plain(str(tmp_path / "saved"))  # saved as a plain MPNet
    assert not any(uses_fused_attention(module) for module in reloaded.modules())
    torch.testing.assert_close(
        reloaded.encode(TEXTS, convert_to_tensor=True),
        model.encode(TEXTS, convert_to_tensor=True),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_copy_runs_its_own_weights_through_sdpa(mpnet_student):
    model = _fused(mpnet_student)
    twin = copy.deepcopy(model)
    attention = _attention_modules(twin)[0]
    assert uses_fused_attention(attention)
    assert attention.forward.__self__ is attention  # bound to the copy, not the original


def test_the_trained_student_is_measured_with_fused_attention(mpnet_student):
    """The catalog loads a saved student plainly; the evaluate node's copy gets sdpa."""
    ready = for_inference(_plain(mpnet_student), ComputeConfig(device="cpu", use_bf16=True))
    assert all(uses_fused_attention(module) for module in _attention_modules(ready))


@pytest.mark.slow
def test_compiled_model_traces_the_fused_attention(mpnet_student):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model = load_sentence_transformer(
        mpnet_student, ComputeConfig(device="cpu", compile_model=True)
    )
    compiled = model.encode(TEXTS, convert_to_tensor=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it really compiled
    assert all(uses_fused_attention(module) for module in _attention_modules(model))
    plain = _plain(mpnet_student).encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(compiled, plain, rtol=1e-4, atol=1e-4)
