"""The models an evaluation compares, seen through one interface: texts in, float32 rows out.

The teacher, the student before and after training and every export of it (ONNX, OpenVINO) are
measured by the same code, so each is wrapped as an :class:`EvaluatedModel`: something that
encodes texts, plus what the report and the MTEB result files say about it (its source, a
revision that tells different weights apart, its size).
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from sentence_transformers import SentenceTransformer

from embedding_distillation.files import sha256_file
from embedding_distillation.models import weights_fingerprint

REVISION_DIGITS = 12  # hex digits of a weights fingerprint kept as the MTEB revision
CACHE_KEY_DIGITS = (16, 8)  # hex digits of the weights fingerprint and of the settings hash


class TextEncoder(Protocol):
    """Anything that turns texts into one embedding row each (``OnnxEncoder`` and friends)."""

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts``, in input order: (len(texts), dim)."""
        ...


class SentenceTransformerEncoder:
    """A sentence-transformers model behind :class:`TextEncoder`: float32 numpy, no bars."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts`` as float32 (a bf16 model's output is upcast)."""
        embeddings = self.model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(embeddings, dtype=np.float32)


@dataclass(frozen=True)
class EvaluatedModel:
    """One model as the evaluation sees it.

    Attributes:
        encoder: Turns texts into embeddings.
        source: What the model is (a folder name or Hub id: ``all-MiniLM-L6-v2``); MTEB result
            files are stored under ``<role>/<source>``.
        revision: Tells different weights of one source apart (a weights fingerprint).
        parameters: Parameter count, when the model has torch parameters.
        size_mb: Size of the weights in MB (in memory for torch models, on disk for exports).
        prompts: sentence-transformers prompts (``{"query": "..."}``), passed to MTEB tasks.
        cache_key: Names the embeddings the model gives, for the embedding cache (``None``:
            never cached); see :func:`cache_key`.
    """

    encoder: TextEncoder
    source: str
    revision: str
    parameters: int | None = None
    size_mb: float | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    cache_key: str | None = None


def cache_key(model: SentenceTransformer, fingerprint: str, prompts: dict[str, str]) -> str:
    """``<weights fingerprint>-<settings>``: what a model's embeddings depend on.

    The settings are what changes the output without changing the weights: the modules and
    their configuration (pooling mode...), ``max_seq_length`` and the prompts. The device is
    left out: its float differences lie far below the reported digits.
    """
    settings = json.dumps(
        {"modules": repr(model), "max_seq_length": model.max_seq_length, "prompts": prompts},
        sort_keys=True,
    )
    weights, digest = CACHE_KEY_DIGITS
    return f"{fingerprint[:weights]}-{hashlib.sha256(settings.encode()).hexdigest()[:digest]}"


def from_sentence_transformer(model: SentenceTransformer, source: str) -> EvaluatedModel:
    """Wrap a loaded sentence-transformers model; its revision is its weights fingerprint."""
    parameters = list(model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in parameters)
    prompts = {name: text for name, text in (model.prompts or {}).items() if text}
    fingerprint = weights_fingerprint(model)
    return EvaluatedModel(
        encoder=SentenceTransformerEncoder(model),
        source=source,
        revision=fingerprint[:REVISION_DIGITS],
        parameters=sum(p.numel() for p in parameters),
        size_mb=round(weight_bytes / 2**20, 2),
        prompts=prompts,
        cache_key=cache_key(model, fingerprint, prompts),
    )


def from_export(
    folder: Path, name: str, source: str, *, threads: int, prompts: dict[str, str] | None = None
) -> EvaluatedModel:
    """Wrap the export ``name`` (``onnx_int8``...) in ``folder``, run on ``threads`` threads.

    Its revision is a hash of its model file; its size, the model file with its companions.
    """
    from embedding_distillation.export.formats import FORMATS, model_file_bytes
    from embedding_distillation.export.runtime import load_encoder

    path = folder / FORMATS[name].file
    return EvaluatedModel(
        encoder=load_encoder(folder, name, threads=threads),
        source=source,
        revision=sha256_file(path)[:REVISION_DIGITS],
        size_mb=round(model_file_bytes(path) / 2**20, 2),
        prompts=dict(prompts or {}),
    )
