import pytest
import torch

from embedding_distillation.compute import (
    ComputeConfig,
    attention_implementation,
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


def test_flash_attention_falls_back_to_sdpa_with_one_warning_on_cpu(caplog):
    config = ComputeConfig(use_flash_attention=True)
    with caplog.at_level("WARNING"):
        assert attention_implementation(config, torch.device("cpu")) is None
    assert sum("flash-attn is not usable" in r.message for r in caplog.records) == 1
    assert attention_implementation(ComputeConfig(), torch.device("cpu")) is None
