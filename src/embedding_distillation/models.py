"""Loading sentence-transformers models from a Hub id or a local folder, and looking inside them.

A sentence-transformers model is a sequence of modules. The conventions used across the project:

- the *backbone* is every module up to and including the first ``Pooling`` module (in a static
  model, the ``StaticEmbedding`` module, which pools its own token vectors);
- the *head* is what follows (``Dense`` layers, ``Normalize``);
- ``pre_dense`` embeddings are the backbone's output (the pooled vector before any Dense or
  Normalize), ``final`` embeddings are the whole model's output.
"""

import copy
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, StaticEmbedding

from embedding_distillation.attention import attention_implementation, use_fused_attention
from embedding_distillation.compute import (
    ComputeConfig,
    check_precision,
    maybe_compile,
    resolve_device,
    torch_dtype,
)
from embedding_distillation.hub_reachability import check_hub_reachable

logger = logging.getLogger(__name__)


def looks_like_local_path(source: str) -> bool:
    """True when ``source`` is written as a filesystem path rather than a Hub id.

    Hub ids are ``name`` or ``namespace/name``; anything starting with ``.``, ``/`` or ``~``,
    or with more than one ``/``, or using the OS separator on Windows, is a path.
    """
    return (
        source.startswith((".", "/", "~"))
        or source.count("/") > 1
        or (os.sep != "/" and os.sep in source)
    )


def resolve_model_source(source: str | os.PathLike[str], *, what: str = "model") -> str:
    """Return a loadable model reference, or fail clearly for a local path that is missing.

    A Hub id is checked to be reachable first (:func:`.hub_reachability.check_hub_reachable`):
    offline, the loaders would retry for over a minute before failing.

    Args:
        source: A Hub id (``org/name``) or a path to a sentence-transformers model folder.
        what: How to name the model in errors (``"teacher_model"``, ``"student_model"``).

    Returns:
        The absolute path for an existing folder, else the Hub id unchanged.
    """
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(
                f"{what} {text!r} is a file; pass the folder that holds a sentence-transformers "
                "model (with modules.json or config.json)."
            )
        return str(path.resolve())
    if looks_like_local_path(text) or not text:
        raise FileNotFoundError(
            f"{what} path {text!r} does not exist (working directory: {Path.cwd()}). "
            "Pass an existing model folder, or a Hugging Face Hub id such as "
            "'sentence-transformers/all-MiniLM-L6-v2'."
        )
    check_hub_reachable(text, repo_type="model", what=what)
    return text


def load_model_config(source: str) -> Any:
    """Load only the transformer config (cheap: no weights) to validate options early."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except OSError as e:
        raise OSError(
            f"Could not read the model config of {source!r}: {e}. If this is a Hub id, check the "
            "name and your network/HF_ENDPOINT; if it is a local folder, it must hold config.json."
        ) from e


def load_sentence_transformer(
    source: str, compute: ComputeConfig, *, for_training: bool = False
) -> SentenceTransformer:
    """Load a sentence-transformers model on the configured device, dtype and attention.

    For inference the weights are cast to the requested precision; for training they stay in
    float32 and the trainer applies mixed precision. Attention: see :mod:`.attention`.
    """
    device = resolve_device(compute.device)
    check_precision(compute, device)
    model_kwargs: dict[str, Any] = {
        "attn_implementation": attention_implementation(compute, device, source)
    }
    if not for_training and compute.precision != "fp32":
        model_kwargs["dtype"] = torch_dtype(compute)
    try:
        model = SentenceTransformer(source, device=str(device), model_kwargs=model_kwargs)
    except OSError as e:
        raise OSError(
            f"Could not load the sentence-transformers model {source!r}: {e}. Check the Hub id "
            "(and network/HF_ENDPOINT) or pass a local model folder."
        ) from e
    use_fused_attention(model)
    return model if for_training else _prepare_for_inference(model, compute)


def _prepare_for_inference(
    model: SentenceTransformer, compute: ComputeConfig
) -> SentenceTransformer:
    """Eval mode and, when asked, compilation, in place: the last steps of making a model ready."""
    model.eval()
    # The encoder calls the modules one by one, so compile the transformer module: its
    # __call__ is what runs (it reaches the Hugging Face model through .forward, which
    # would bypass a compiled model's __call__).
    maybe_compile(model[0], compute)
    return model


def for_inference(model: SentenceTransformer, compute: ComputeConfig) -> SentenceTransformer:
    """``model`` on the compute device and precision, in eval mode, compiled if asked.

    What :func:`load_sentence_transformer` does at load time, for a model already in memory
    (the trained student, which the catalog loads in float32 on the CPU), so that it is
    measured like the teacher and the untrained student. A model already on that device and
    precision is returned as it is; otherwise a copy is moved, so the caller's model (also saved
    and pushed) keeps its float32 weights.
    """
    device = resolve_device(compute.device)
    dtype = torch_dtype(compute)
    first = next(model.parameters(), None)
    use_fused_attention(model)  # in place: the same numbers, and a copy inherits it
    if first is None or (
        first.device == device and first.dtype == dtype and not compute.compile_model
    ):
        return model.eval()
    return _prepare_for_inference(copy.deepcopy(model).to(device=device, dtype=dtype), compute)


def pooling_index(model: SentenceTransformer) -> int:
    """Index of the first Pooling (or StaticEmbedding) module: the end of the backbone."""
    for index, module in enumerate(model):
        if isinstance(module, Pooling | StaticEmbedding):
            return index
    raise ValueError(
        f"The model has no Pooling or StaticEmbedding module (modules: {module_names(model)}); "
        "this project needs a sentence-transformers model that pools token embeddings."
    )


def module_names(model: SentenceTransformer) -> list[str]:
    """Class names of the model's modules, in order (for logs and errors)."""
    return [type(module).__name__ for module in model]


def has_dense(model: SentenceTransformer) -> bool:
    """True when a Dense layer follows the pooling module."""
    return any(type(m).__name__ == "Dense" for m in list(model)[pooling_index(model) + 1 :])


def backbone(model: SentenceTransformer) -> SentenceTransformer:
    """A model that shares the backbone modules of ``model`` (up to and including Pooling)."""
    modules = list(model)[: pooling_index(model) + 1]
    return SentenceTransformer(modules=modules, device=str(model.device))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Attention-mask mean over tokens: (batch, seq, h) -> (batch, h).

    How hidden states are pooled, for the teacher's stored layers and the student's matched ones.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


def text_config(config: Any) -> Any:
    """The text part of a (possibly multimodal) Hugging Face config."""
    get_text_config = getattr(config, "get_text_config", None)
    return get_text_config() if callable(get_text_config) else config


def layer_stack(
    model: torch.nn.Module, total: int, *, fix: str
) -> tuple[torch.nn.Module, str, torch.nn.ModuleList]:
    """The (parent, attribute name, ModuleList) of the unique stack of ``total`` layers.

    The stack is the one ``torch.nn.ModuleList`` of ``total`` modules of a single type (BERT and
    MPNet: ``encoder.layer``, Gemma: ``layers``). ``fix`` ends the error raised when there is
    no such unique list (what the user can do instead).
    """
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList)
        and len(module) == total
        and len({type(layer) for layer in module}) == 1
    ]
    if len(candidates) != 1:
        found = [name for name, _ in candidates]
        raise ValueError(
            f"Could not find a unique stack of {total} transformer layers in "
            f"{type(model).__name__} (candidates: {found or 'none'}); {fix}"
        )
    path, stack = candidates[0]
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    return parent, name, stack


FINGERPRINT_SAMPLES = 4096  # values read per tensor for the weights fingerprint


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over each tensor's name, shape, dtype and an evenly strided sample of its values.

    Reading every weight (hundreds of MB) would cost seconds per run; any training or
    fine-tuning changes the sampled values too, which is what this identity check is for.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        stride = max(1, flat.numel() // FINGERPRINT_SAMPLES)
        sample = flat[::stride].to("cpu").contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(sample.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
