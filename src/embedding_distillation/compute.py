"""Device, precision and compilation: the one place that asks torch about hardware.

Everything else receives a :class:`ComputeConfig` (the ``compute`` parameter group) and calls the
helpers here, so "which device" and "which dtype" are decided once ("which attention kernel":
:mod:`embedding_distillation.attention`).
"""

import functools
import gc
import logging
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch

from embedding_distillation.distributed import local_rank
from embedding_distillation.params import from_params

logger = logging.getLogger(__name__)

Device = Literal["auto", "cuda", "mps", "cpu"]
DEVICES: tuple[str, ...] = get_args(Device)


@dataclass(frozen=True)
class ComputeConfig:
    """The ``compute`` parameter group, shared by both pipelines (names from the seed API).

    Attributes:
        device: ``"auto"`` picks cuda, then mps, then cpu.
        batch_size: Texts per forward pass when encoding (teacher and evaluation).
        use_fp16: Run in float16.
        use_bf16: Run in bfloat16 (Ampere or newer GPUs, recent CPUs).
        compile_model: Wrap the model with ``torch.compile``.
        use_flash_attention: flash_attention_2 where usable, else PyTorch's sdpa (one warning).
        gradient_checkpointing: Trade compute for memory when training.
    """

    device: Device = "auto"
    batch_size: int = 32
    use_fp16: bool = False
    use_bf16: bool = False
    compile_model: bool = False
    use_flash_attention: bool = False
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(
                f"compute.device must be one of {list(DEVICES)}, got {self.device!r}. "
                "Use 'auto' to pick the best available device."
            )
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(
                f"compute.batch_size must be a positive integer, got {self.batch_size!r}."
            )
        if self.use_fp16 and self.use_bf16:
            raise ValueError(
                "compute.use_fp16 and compute.use_bf16 are both true; choose one precision "
                "(use_bf16 on Ampere/Hopper GPUs, use_fp16 on older GPUs), or neither for float32."
            )

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "ComputeConfig":
        """Build from a Kedro parameter dict, rejecting unknown keys by name."""
        return from_params(cls, params, group="compute")

    @property
    def precision(self) -> Literal["fp32", "fp16", "bf16"]:
        """The precision name: ``fp32``, ``fp16`` or ``bf16``."""
        if self.use_bf16:
            return "bf16"
        if self.use_fp16:
            return "fp16"
        return "fp32"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for manifests and model cards)."""
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """Turn ``auto|cuda|mps|cpu`` into a torch device, failing clearly when it is missing.

    CUDA resolves to GPU ``LOCAL_RANK``: under ``torchrun`` each process takes its own GPU.
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "compute.device is 'cuda' but torch sees no CUDA device (torch "
            f"{torch.__version__}). Use device 'auto' or 'cpu', or install a CUDA build of torch."
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("compute.device is 'mps' but MPS is not available; use 'auto' or 'cpu'.")
    if device == "cuda":
        return torch.device("cuda", local_rank())
    return torch.device(device)


def torch_dtype(compute: ComputeConfig) -> torch.dtype:
    """The floating-point dtype that ``compute`` asks for."""
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[compute.precision]


def cpu_has_bfloat16() -> bool:
    """True when this CPU has bfloat16 instructions torch uses (AVX512-BF16 or AMX).

    A torch build that cannot tell counts as yes: the check only exists to warn.
    """
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    answers = [check() for check in checks if callable(check)]
    return not answers or any(answers)


@functools.cache
def warn_emulated_bfloat16() -> None:
    """Say once per process that bfloat16 on this CPU is emulated."""
    logger.warning(
        "use_bf16 is set on a CPU without bfloat16 instructions (AVX512-BF16 or AMX): torch "
        "emulates bfloat16 here, which is usually slower than float32. Set "
        "compute.use_bf16=false on this machine; it pays on CUDA GPUs and on CPUs such as AMD "
        "Zen 4 or Intel Sapphire Rapids."
    )


def check_precision(compute: ComputeConfig, device: torch.device) -> None:
    """Warn when the requested precision is emulated on ``device``."""
    if device.type == "cpu" and compute.precision == "bf16" and not cpu_has_bfloat16():
        warn_emulated_bfloat16()


def maybe_compile(model: torch.nn.Module, compute: ComputeConfig) -> torch.nn.Module:
    """Compile ``model`` in place with dynamic shapes when ``compile_model`` is set."""
    if compute.compile_model:
        logger.info("Compiling the model with torch.compile(dynamic=True)")
        model.compile(dynamic=True)
    return model


def release_memory() -> None:
    """Free what a failed step left behind: unreachable Python objects, then CUDA's cached blocks.

    Called after a student's step failed (a CUDA out-of-memory error, say), so the next student
    starts with the memory the failed one held.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
