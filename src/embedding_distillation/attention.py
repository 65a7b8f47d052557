"""Which attention kernel a model runs: flash-attn, PyTorch's fused sdpa, or eager.

transformers runs most encoders (BERT, Gemma, ...) through
``torch.nn.functional.scaled_dot_product_attention`` (sdpa) by default, and through flash-attn
when asked and installed. MPNet, the all-mpnet-base-v2 family (the demo's teacher and students),
has neither there: its attention is eager (scores, position bias, mask, softmax and dropout as
separate tensors), and asking it for flash attention stops the load with an error. Here:

- ``use_flash_attention`` asks for flash_attention_2 only where flash-attn is usable (a CUDA
  device, the package installed) and the architecture supports it; otherwise one warning, and
  the default attention;
- every MPNet self-attention module runs through sdpa, with its relative-position bias and the
  padding mask as one additive mask (:func:`use_fused_attention`): the same embeddings within
  float rounding, and PyTorch's fused kernels (on a GPU) instead of separate score, softmax and
  weighting steps. The replacement is an instance attribute, so weights, state-dict keys and
  saved models are unchanged.
"""

import logging
import types
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from transformers.models.mpnet.modeling_mpnet import MPNetSelfAttention

from embedding_distillation.compute import ComputeConfig

logger = logging.getLogger(__name__)


def attention_implementation(
    compute: ComputeConfig, device: torch.device, source: str
) -> str | None:
    """The ``attn_implementation`` to load ``source`` with: flash_attention_2 or ``None``.

    ``None`` leaves the choice to transformers (sdpa where the architecture has it, eager
    otherwise; MPNet then gets sdpa from :func:`use_fused_attention`). flash_attention_2 is
    returned only when asked for, usable here and supported by the architecture; otherwise the
    reason is logged once, as a warning.
    """
    if not compute.use_flash_attention:
        return None
    from transformers.utils import is_flash_attn_2_available

    if device.type != "cuda" or not is_flash_attn_2_available():
        logger.warning(
            "use_flash_attention is set but flash-attn is not usable here (device %s, installed: "
            "%s); using the model's default attention instead (PyTorch's sdpa). Install "
            "flash-attn with `pip install flash-attn --no-build-isolation` on a CUDA machine.",
            device.type,
            is_flash_attn_2_available(),
        )
        return None
    architecture = model_class(source)
    if architecture is not None and not getattr(architecture, "_supports_flash_attn", False):
        logger.warning(
            "use_flash_attention is set but transformers has no flash-attention path for %s "
            "(the model %s); using PyTorch's sdpa attention instead.",
            architecture.__name__,
            source,
        )
        return None
    return "flash_attention_2"


def model_class(source: str) -> type | None:
    """The transformers class that loads ``source`` (from its config alone), if it can be told.

    ``None`` when the config cannot be read or maps to no class (then transformers decides at
    load time).
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        found = MODEL_MAPPING[type(AutoConfig.from_pretrained(source))]
    except (OSError, KeyError, ValueError):
        return None
    return found[0] if isinstance(found, tuple) else found  # a tuple lists the model's variants


def sdpa_mpnet_self_attention(
    self: MPNetSelfAttention,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
    output_attentions: bool = False,
    **kwargs: Any,
) -> tuple[torch.Tensor, ...]:
    """``MPNetSelfAttention.forward`` through sdpa: the bias and the mask add to the scores.

    Asked for the attention probabilities (``output_attentions``), which sdpa does not return,
    it runs transformers' eager forward.
    """
    if output_attentions:
        return MPNetSelfAttention.forward(
            self, hidden_states, attention_mask, position_bias, output_attentions, **kwargs
        )
    heads = (*hidden_states.shape[:-1], -1, self.attention_head_size)
    q, k, v = (proj(hidden_states).view(heads).transpose(1, 2) for proj in (self.q, self.k, self.v))
    mask = position_bias
    if attention_mask is not None:
        mask = attention_mask if mask is None else mask + attention_mask
    context = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        dropout_p=self.dropout.p if self.training else 0.0,
    )
    context = context.transpose(1, 2).reshape(*hidden_states.shape[:-1], self.all_head_size)
    return (self.o(context),)


def uses_fused_attention(module: torch.nn.Module) -> bool:
    """True when ``module``'s forward is :func:`sdpa_mpnet_self_attention`."""
    forward = module.__dict__.get("forward")
    return getattr(forward, "__func__", None) is sdpa_mpnet_self_attention


def use_fused_attention(model: SentenceTransformer) -> int:
    """Run every MPNet self-attention module of ``model`` through sdpa, in place.

    Idempotent; models without MPNet attention are left as they are.

    Returns:
        How many attention modules were switched by this call.
    """
    switched = 0
    for module in model.modules():
        if isinstance(module, MPNetSelfAttention) and not uses_fused_attention(module):
            # an instance attribute: nn.Module.__call__ finds it before the class's forward
            module.forward = types.MethodType(sdpa_mpnet_self_attention, module)  # type: ignore[method-assign]
            switched += 1
    if switched:
        logger.info(
            "MPNet attention: %d self-attention modules run through PyTorch's "
            "scaled_dot_product_attention (transformers has only eager attention for MPNet).",
            switched,
        )
    return switched
