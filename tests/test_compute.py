"""Device, precision and attention choices."""

import pytest
import torch

from embedding_distillation import compute
from embedding_distillation.compute import (
    ComputeConfig,
    check_precision,
    resolve_device,
    torch_dtype,
)


def test_defaults_are_the_seed_defaults():
    config = ComputeConfig()
    assert (config.device, config.batch_size, config.use_fp16, config.use_bf16) == (
        "auto",
        32,
        False,
        False,
    )
    assert not (config.compile_model or config.use_flash_attention or config.gradient_checkpointing)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"device": "tpu"},
            r"compute.device must be one of \['auto', 'cuda', 'mps', 'cpu'\], got 'tpu'",
        ),
        ({"batch_size": 0}, "compute.batch_size must be a positive integer, got 0"),
        ({"use_fp16": True, "use_bf16": True}, "use_fp16 and compute.use_bf16 are both true"),
    ],
)
def test_bad_values_are_rejected_with_the_value_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ComputeConfig(**kwargs)


def test_from_params_names_unknown_keys():
    with pytest.raises(ValueError, match=r"Unknown key\(s\) \['bach_size'\] in the 'compute'"):
        ComputeConfig.from_params({"bach_size": 8})


@pytest.mark.parametrize(
    ("flags", "dtype", "name"),
    [
        ({}, torch.float32, "fp32"),
        ({"use_fp16": True}, torch.float16, "fp16"),
        ({"use_bf16": True}, torch.bfloat16, "bf16"),
    ],
)
def test_precision_maps_to_a_torch_dtype(flags, dtype, name):
    config = ComputeConfig(**flags)
    assert config.precision == name
    assert torch_dtype(config) == dtype


def test_auto_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_without_cuda_fails_clearly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="compute.device is 'cuda' but torch sees no CUDA"):
        resolve_device("cuda")


@pytest.fixture
def cpu_features(monkeypatch):
    """Pretend the CPU has (or lacks) bfloat16 instructions; the once-per-process warning resets."""

    def set_features(avx512_bf16: bool, amx: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)

    compute.warn_emulated_bfloat16.cache_clear()
    yield set_features
    compute.warn_emulated_bfloat16.cache_clear()


def test_bf16_on_a_cpu_without_bf16_instructions_warns_once(cpu_features, caplog):
    cpu_features(avx512_bf16=False, amx=False)
    with caplog.at_level("WARNING"):
        for _ in range(3):  # teacher, student, evaluation: one warning
            check_precision(ComputeConfig(use_bf16=True), torch.device("cpu"))
    messages = [r.message for r in caplog.records]
    assert len(messages) == 1
    assert (
        "use_bf16 is set on a CPU without bfloat16 instructions (AVX512-BF16 or AMX)"
        in (messages[0])
    )
    assert "Set compute.use_bf16=false on this machine" in messages[0]


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "config", "device"),
    [
        (True, False, ComputeConfig(use_bf16=True), "cpu"),
        (False, True, ComputeConfig(use_bf16=True), "cpu"),
        (False, False, ComputeConfig(), "cpu"),
        (False, False, ComputeConfig(use_bf16=True), "meta"),  # not a CPU
    ],
)
def test_no_warning_where_bf16_is_native_or_not_asked_for(
    cpu_features, caplog, avx512_bf16, amx, config, device
):
    cpu_features(avx512_bf16=avx512_bf16, amx=amx)
    with caplog.at_level("WARNING"):
        check_precision(config, torch.device(device))
    assert caplog.records == []


def test_the_model_loader_checks_the_precision(cpu_features, caplog, student):
    from embedding_distillation.models import load_sentence_transformer

    cpu_features(avx512_bf16=False, amx=False)
    with caplog.at_level("WARNING"):
        load_sentence_transformer(student, ComputeConfig(device="cpu", use_bf16=True))
    assert any("without bfloat16 instructions" in r.message for r in caplog.records)
