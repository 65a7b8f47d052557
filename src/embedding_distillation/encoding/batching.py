"""Tokenize a shard's texts once, as the teacher does, and cut them into length-sorted batches.

Plain functions over a :class:`~embedding_distillation.encoding.teacher.TeacherEncoder`: no
threads and no forward passes (those are :mod:`~embedding_distillation.encoding.engine`'s).
Batches hold ``batch_size`` texts, or as many as fit ``max_tokens_per_batch`` padded tokens, and
are cut to their own longest text, so short texts are not padded to a long one's length.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import torch

from embedding_distillation.encoding.teacher import TeacherEncoder

TOKENIZE_WINDOW = 4096  # texts tokenized and padded together (the longest batch of short texts)

Batch: TypeAlias = tuple[np.ndarray, dict[str, Any]]
"""(positions in the shard, the teacher's input features for those rows)."""


@dataclass
class ShardTexts:
    """The rows of one shard: their row ids (positions in the corpus) and texts."""

    index: int
    row_ids: np.ndarray
    texts: list[str]


@dataclass
class TokenizedShard:
    """One shard's texts, tokenized and cut into length-sorted batches."""

    shard: ShardTexts
    batches: list[Batch]
    tokens: int
    truncated: int

    @property
    def index(self) -> int:
        """The shard's number."""
        return self.shard.index


def tokenize_shard(
    teacher: TeacherEncoder,
    shard: ShardTexts,
    *,
    batch_size: int,
    max_tokens: int | None = None,
    pin: bool = False,
) -> TokenizedShard:
    """Tokenize a shard's texts once and cut them into batches, with token and truncation counts.

    Texts are taken longest first (by characters) in windows of ``TOKENIZE_WINDOW``, each
    tokenized and padded on its own, so the token ids held stay close to the real tokens
    however large the shard is; within a window, batches follow the token lengths.

    Args:
        teacher: The teacher whose tokenizer and length limit apply.
        shard: The texts.
        batch_size: Texts per batch when ``max_tokens`` is ``None``.
        max_tokens: Padded tokens per batch (``None``: batches of ``batch_size`` texts).
        pin: Put the batches in pinned memory (for a CUDA teacher).
    """
    texts = shard.texts
    limit = teacher.max_seq_length
    left = teacher.model.tokenizer.padding_side == "left"
    by_chars = (
        np.argsort([-len(text) for text in texts], kind="stable")
        if len(texts) > TOKENIZE_WINDOW
        else np.arange(len(texts))  # one window: the order does not matter
    )
    batches: list[Batch] = []
    tokens = truncated = 0
    for start in range(0, len(texts), TOKENIZE_WINDOW):
        window = by_chars[start : start + TOKENIZE_WINDOW]
        features = teacher.tokenize([texts[i] for i in window])
        lengths = features["attention_mask"].sum(dim=1).numpy()
        at_limit = window[lengths >= limit]  # truncated, or exactly at the limit
        truncated += int((token_lengths(teacher, [texts[i] for i in at_limit]) > limit).sum())
        tokens += int(lengths.sum())
        order = np.argsort(-lengths, kind="stable")
        for rows in length_batches(order, lengths, batch_size=batch_size, max_tokens=max_tokens):
            width = int(lengths[rows].max())
            batches.append((window[rows], _slice_batch(features, rows, width, left, pin)))
    return TokenizedShard(shard, batches, tokens, truncated)


def length_batches(
    order: np.ndarray, lengths: np.ndarray, *, batch_size: int, max_tokens: int | None = None
) -> Iterator[np.ndarray]:
    """Cut the length-sorted positions ``order`` into batches by count or by padded tokens.

    Args:
        order: Positions, longest text first.
        lengths: Token length of each position.
        batch_size: Texts per batch when ``max_tokens`` is ``None``.
        max_tokens: Padded tokens per batch: as many texts as fit at the first one's length
            (at least one).
    """
    if max_tokens is None:
        yield from (order[i : i + batch_size] for i in range(0, len(order), batch_size))
        return
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])  # sorted descending: the first is the longest
        count = max(1, max_tokens // max(longest, 1))
        yield order[start : start + count]
        start += count


def _slice_batch(
    features: dict[str, Any], positions: np.ndarray, width: int, left: bool, pin: bool
) -> dict[str, Any]:
    """The rows ``positions`` of a shard's padded features, cut to the batch's longest text."""
    rows = torch.from_numpy(positions)
    batch: dict[str, Any] = {}
    for key, value in features.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            batch[key] = value  # e.g. "modality"
            continue
        picked = value[rows]
        if picked.dim() == 2:  # (batch, seq): padded at the right, or at the left
            picked = picked[:, -width:] if left else picked[:, :width]
        batch[key] = picked.pin_memory() if pin else picked
    return batch


def token_lengths(encoder: TeacherEncoder, texts: list[str]) -> np.ndarray:
    """Token count of each text with special tokens, before truncation."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    tokenizer = encoder.model.tokenizer
    ids = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(texts))
