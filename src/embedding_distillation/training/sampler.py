"""Training batches of texts of similar length: less padding, so more rows per second.

A batch is padded to its longest text, and the transformer's cost grows with the padded length.
Random batches of sentences that run from 5 to 100 tokens are padded to nearly the longest;
grouping texts of similar length removes most of that padding. The grouping follows
transformers' ``LengthGroupedSampler``: shuffle all rows, cut the order into windows of
``WINDOW_BATCHES`` batches, sort each window by length, cut it into batches, then shuffle the
batches. Every row is still seen once per epoch, batches still mix the corpus (a window spans
random rows), and the order is a function of the seed and the epoch only, so a resumed run sees
the same batches.
"""

from collections.abc import Iterator

import numpy as np
import pyarrow.compute as pc
import torch
from datasets import Dataset
from sentence_transformers.base.sampler import DefaultBatchSampler

WINDOW_BATCHES = 50  # batches per length-sorted window


def text_lengths(dataset: Dataset, text_column: str) -> np.ndarray:
    """Length in characters of each text (a cheap stand-in for its token count)."""
    lengths = [
        pc.utf8_length(batch[text_column]).to_numpy(zero_copy_only=False)
        for batch in dataset.with_format("arrow").iter(batch_size=10_000)
    ]
    return np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Shuffled batches whose texts have similar lengths (see the module docstring).

    Args:
        dataset: The training rows.
        batch_size: Rows per batch.
        drop_last: Drop the one batch that is not full.
        lengths: Length of each row's text (:func:`text_lengths`).
        generator: Random generator, reseeded with ``seed + epoch`` at each epoch.
        seed: Base seed.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        *,
        lengths: np.ndarray,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, batch_size, drop_last, generator=generator, seed=seed)
        if len(lengths) != len(dataset):
            raise ValueError(f"Got {len(lengths)} text lengths for {len(dataset)} rows.")
        self.lengths = lengths

    def __iter__(self) -> Iterator[list[int]]:
        """Yield the epoch's batches as lists of row indices."""
        generator = self.generator or torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).numpy()
        window = self.batch_size * WINDOW_BATCHES
        batches: list[np.ndarray] = []
        for start in range(0, len(order), window):
            rows = order[start : start + window]
            rows = rows[np.argsort(-self.lengths[rows], kind="stable")]
            batches += [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()  # windows hold whole batches, so only the last one can be short
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[index].tolist()
