"""``student_type: static``: a ``StaticEmbedding`` student distilled from a model's vocabulary.

model2vec's ``distill_from_model`` runs the model once on every vocabulary token, reduces the
vectors to ``static_pca_dims`` principal components and weights them by SIF over Zipf-estimated
token frequencies. The student is ``StaticEmbedding`` (a text's embedding is the mean of its
tokens' vectors) + ``Normalize``; :func:`~embedding_distillation.training.student.prepare_student`
adds the projection to the target's size and it trains like a transformer student. Untrained, it
is the evaluation's "student before training". The distillation is slow on a CPU, so it is kept
for the process: training and the evaluation share one.

Not ``StaticEmbedding.from_distillation``: it reloads the folder with ``AutoModel`` (a transformer
at the folder's root only) and passes ``apply_zipf``/``use_subword``, which model2vec 0.10 no
longer has (a warning per call); here the model is loaded the project's way and handed to
``distill_from_model``, where ``from_distillation`` ends.

Measured options: benchmarks/RESULTS_quality.md#static-student-options
"""

import functools
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import (
    Normalize,
    StaticEmbedding,
    Transformer,
)
from tokenizers import Tokenizer
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from embedding_distillation import extras
from embedding_distillation.compute import ComputeConfig, resolve_device
from embedding_distillation.models import for_inference, load_sentence_transformer
from embedding_distillation.training.config import EmbeddingTrainerConfig

logger = logging.getLogger(__name__)

# Distillations kept per process (one per model and options): training and evaluation share one.
DISTILLATION_CACHE_SIZE = 2
# A learning rate below this leaves a static student close to its distillation (one warning).
STATIC_MIN_LEARNING_RATE = 1e-3


def load_static_student(
    config: EmbeddingTrainerConfig, source: str, *, for_training: bool, shape_only: bool = False
) -> SentenceTransformer:
    """``StaticEmbedding`` + ``Normalize`` from ``source``, on the configured device.

    Args:
        config: The training options (``static_pca_dims``, ``static_sif_coefficient``, device).
        source: The resolved ``student_model``: a transformer whose vocabulary is distilled, or
            a local folder that already holds a static sentence-transformer (loaded as it is).
        for_training: Keep float32 weights; otherwise the model is made ready for inference
            (eval mode, the configured precision).
        shape_only: Skip the distillation and give the embedding table random weights of the
            size the distillation would make (the dry run's plan).
    """
    device = resolve_device(config.device)
    if is_static_folder(source):
        model = SentenceTransformer(source, device=str(device))
        logger.info(
            "student_model %s is already a static model (%s): loaded as it is; "
            "static_pca_dims and static_sif_coefficient do not apply.",
            source,
            " -> ".join(type(m).__name__ for m in model),
        )
        if not any(isinstance(m, Normalize) for m in model):
            model = SentenceTransformer(modules=[*model, Normalize()], device=str(device))
    else:
        embedding = (
            planned_embedding(config, source) if shape_only else distilled_embedding(config, source)
        )
        model = SentenceTransformer(modules=[embedding, Normalize()], device=str(device))
    if for_training:
        if config.learning_rate < STATIC_MIN_LEARNING_RATE:
            logger.warning(
                "learning_rate %g is small for a static student, whose token vectors move only "
                "in batches that hold their token: it will stay close to its untrained "
                "distillation. Set learning_rate to about 3e-3 (what the demo measured).",
                config.learning_rate,
            )
        return model
    return for_inference(model, config.compute)


def distilled_embedding(config: EmbeddingTrainerConfig, source: str) -> StaticEmbedding:
    """A ``StaticEmbedding`` holding a copy of the (cached) distillation of ``source``."""
    weights, tokenizer_json = distil_vocabulary(
        source,
        folder_signature(source),
        # What the distillation depends on (batch size and precision do not: float32, its own
        # batches), so that training and evaluation share one entry.
        ComputeConfig(device=config.compute.device, use_flash_attention=config.use_flash_attention),
        config.static_pca_dims,
        config.static_sif_coefficient,
    )
    return StaticEmbedding(
        Tokenizer.from_str(tokenizer_json),
        embedding_weights=torch.tensor(weights),  # a copy: the cached array stays as it is
        base_model=source,
    )


def planned_embedding(config: EmbeddingTrainerConfig, source: str) -> StaticEmbedding:
    """A randomly initialised ``StaticEmbedding`` of the distillation's size, without running it.

    The model is still loaded (a check that it is a transformer with a fast tokenizer); the
    table has a row per tokenizer entry, a few more than the distillation keeps (it drops
    special and unused tokens).
    """
    model = load_sentence_transformer(source, config.compute, for_training=True)
    _, tokenizer, hidden = transformer_parts(model, source)  # token vectors: the hidden size
    dim = static_dim(hidden, len(tokenizer), config.static_pca_dims)
    return StaticEmbedding(tokenizer, embedding_dim=dim, base_model=source)


def is_static_folder(source: str) -> bool:
    """True when ``source`` is a local sentence-transformers folder whose first module is static."""
    modules_file = Path(source) / "modules.json"
    if not modules_file.is_file():
        return False
    modules = json.loads(modules_file.read_text())
    return bool(modules) and modules[0].get("type", "").endswith("StaticEmbedding")


def transformer_parts(
    model: SentenceTransformer, source: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast, int]:
    """The Hugging Face model, fast tokenizer and hidden size of ``model``'s transformer.

    Raises:
        ValueError: When the first module is not a transformer with a fast tokenizer.
    """
    first = model[0]
    tokenizer = getattr(first, "tokenizer", None)
    if not isinstance(first, Transformer) or not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise ValueError(
            f"student_type 'static' distils the vocabulary of a transformer with a fast "
            f"tokenizer, but student_model {source!r} starts with {type(first).__name__} "
            f"(tokenizer: {type(tokenizer).__name__}). Name a sentence-transformers folder such "
            "as the teacher's, or use student_type: transformer."
        )
    return first.auto_model, tokenizer, first.get_embedding_dimension()


def static_dim(hidden: int, vocabulary: int, pca_dims: int | None) -> int:
    """Width of the distilled vectors, as model2vec's ``apply_pca`` decides it.

    PCA keeps ``min(pca_dims, hidden)`` components, unless ``pca_dims`` is ``None`` or not
    below the vocabulary size (then there is no PCA and the width is ``hidden``).
    """
    if pca_dims is None or pca_dims >= vocabulary:
        return hidden
    return min(pca_dims, hidden)


def folder_signature(source: str) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of the files in a local folder (empty for a Hub id): the cache key."""
    folder = Path(source)
    if not folder.is_dir():
        return ()
    return tuple(
        sorted(
            (f.name, f.stat().st_size, f.stat().st_mtime_ns)
            for f in folder.iterdir()
            if f.is_file()
        )
    )


@functools.lru_cache(maxsize=DISTILLATION_CACHE_SIZE)
def distil_vocabulary(
    source: str,
    signature: tuple[tuple[str, int, int], ...],
    compute: ComputeConfig,
    pca_dims: int | None,
    sif_coefficient: float | None,
) -> tuple[np.ndarray, str]:
    """model2vec's distillation of ``source``'s vocabulary: (vectors, tokenizer JSON).

    Cached per process; ``signature`` (:func:`folder_signature`) makes a changed folder a new
    entry. The vectors are returned read-only: callers copy them.
    """
    try:
        from model2vec.distill import distill_from_model
    except ImportError as e:
        raise ImportError(
            f"student_type 'static' needs model2vec's distillation, which could not be imported "
            f"({e}). Install the static extra (model2vec and its tokenizer dependency "
            f"skeletoken) with `{extras.install_command('static')}` (not model2vec[distill], "
            "which would downgrade transformers)."
        ) from e

    device = resolve_device(compute.device)
    if device.type == "mps":  # model2vec refuses MPS with torch >= 2.8
        logger.info("Distilling the vocabulary on the CPU: model2vec does not run on MPS.")
        device = torch.device("cpu")
    auto_model, tokenizer, _ = transformer_parts(
        load_sentence_transformer(source, compute, for_training=True), source
    )
    started = time.perf_counter()
    static = distill_from_model(
        model=auto_model,
        tokenizer=tokenizer,
        device=str(device),
        pca_dims=pca_dims,
        sif_coefficient=sif_coefficient,
        quantize_to="float32",
    )
    vectors = np.asarray(static.embedding, dtype=np.float32)  # (vocabulary, dim)
    vectors.flags.writeable = False
    logger.info(
        "Distilled the vocabulary of %s (%d tokens) into %d-d static vectors in %.0f s "
        "(PCA %s, SIF %s).",
        source,
        vectors.shape[0],
        vectors.shape[1],
        time.perf_counter() - started,
        pca_dims,
        sif_coefficient,
    )
    return vectors, static.tokenizer.to_str()
