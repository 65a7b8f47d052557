import numpy as np
import pytest
import torch
from datasets import Dataset

from embedding_distillation.training.sampler import (
    WINDOW_BATCHES,
    LengthGroupedBatchSampler,
    text_lengths,
)


def _dataset(rows: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset.from_dict({"text": ["x" * int(n) for n in rng.integers(1, 200, size=rows)]})


def _sampler(dataset, batch_size=8, drop_last=False, seed=3):
    return LengthGroupedBatchSampler(
        dataset,
        batch_size,
        drop_last,
        lengths=text_lengths(dataset, "text"),
        generator=torch.Generator(),
        seed=seed,
    )


def test_text_lengths_count_characters():
    data = Dataset.from_dict({"text": ["ab", "", "héllo"]})
    assert text_lengths(data, "text").tolist() == [2, 0, 5]


@pytest.mark.parametrize(("rows", "drop_last"), [(1000, False), (1003, False), (1003, True)])
def test_every_row_once_per_epoch_in_len_batches(rows, drop_last):
    sampler = _sampler(_dataset(rows), drop_last=drop_last)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    seen = [i for batch in batches for i in batch]
    assert len(seen) == len(set(seen))
    if drop_last:
        assert all(len(b) == 8 for b in batches) and len(seen) == rows // 8 * 8
    else:
        assert sorted(seen) == list(range(rows))


def test_batches_hold_similar_lengths_so_padding_shrinks():
    data = _dataset(4000)
    lengths = text_lengths(data, "text")
    grouped = list(_sampler(data))
    random_order = np.random.default_rng(1).permutation(len(data))
    plain = [random_order[i : i + 8] for i in range(0, len(data), 8)]

    def padded(batches):
        return sum(lengths[list(b)].max() * len(b) for b in batches)

    assert padded(grouped) < 0.7 * padded(plain)
    assert padded(grouped) >= lengths.sum()


def test_order_depends_on_seed_and_epoch_only():
    data = _dataset(500)
    first, again, other_seed = _sampler(data), _sampler(data), _sampler(data, seed=4)
    assert list(first) == list(again)
    assert list(first) != list(other_seed)
    again.set_epoch(1)
    assert list(again) != list(first)


def test_batches_mix_the_corpus_within_windows():
    # Consecutive batches do not walk the length order: the batch order is shuffled.
    data = _dataset(WINDOW_BATCHES * 8 * 3)
    lengths = text_lengths(data, "text")
    maxima = [lengths[b].max() for b in _sampler(data)]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_lengths_must_match_the_rows():
    with pytest.raises(ValueError, match=r"Got 3 text lengths for 5 rows"):
        LengthGroupedBatchSampler(_dataset(5), 2, False, lengths=np.zeros(3))
