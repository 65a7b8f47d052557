"""What to encode, checked before any weights load: ``prepare_encoding`` and its ``EncodingJob``."""

import pytest

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.encoding import engine
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.job import prepare_encoding

CPU = ComputeConfig(device="cpu", batch_size=4)


def _job(corpus, teacher, **options):
    config = EncodingConfig(teacher_model=teacher, chunk_size=8, **options)
    return prepare_encoding(corpus, config, CPU)


@pytest.mark.parametrize("given", [99, "99", [0, 99]])
def test_a_layer_beyond_the_teacher_is_refused_before_encoding(corpus, teacher_plain, given):
    """``--params teacher_embeddings.layer_indices=99`` against a 3-layer teacher."""
    config = EncodingConfig.from_params(
        {"teacher_model": teacher_plain, "output_type": "hidden_states", "layer_indices": given}
    )
    with pytest.raises(
        ValueError,
        match=(
            r"layer_indices \[(0, )?99\] include \[99\], but the teacher has 3 layers: valid "
            r"indices are 0 \(embeddings output\) to 3\."
        ),
    ):
        prepare_encoding(corpus, config, ComputeConfig(device="cpu"))


def test_the_last_layer_of_the_teacher_is_accepted(corpus, teacher_plain):
    config = EncodingConfig.from_params(
        {"teacher_model": teacher_plain, "output_type": "hidden_states", "layer_indices": 3}
    )
    assert prepare_encoding(corpus, config, ComputeConfig(device="cpu")).layers == [3]


def test_the_teacher_is_checked_before_the_corpus_is_scanned(corpus, teacher_plain, monkeypatch):
    """A wrong layer fails at once, not after a scan of every text of a large corpus."""
    from embedding_distillation.encoding import job

    def no_scan(*args, **kwargs):
        raise AssertionError("the corpus was scanned before the teacher was checked")

    monkeypatch.setattr(job, "scan_texts", no_scan)
    config = EncodingConfig.from_params(
        {"teacher_model": teacher_plain, "output_type": "hidden_states", "layer_indices": 99}
    )
    with pytest.raises(ValueError, match=r"but the teacher has 3 layers"):
        prepare_encoding(corpus, config, ComputeConfig(device="cpu"))


def test_bad_input_fails_before_any_weights_load(corpus, teacher_plain, monkeypatch):
    monkeypatch.setattr(engine, "load_sentence_transformer", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(ValueError, match="Text column 'body' not found"):
        _job(corpus, teacher_plain, text_column="body")
    with pytest.raises(ValueError, match=r"include \[7\], but the teacher has 3 layers"):
        _job(corpus, teacher_plain, output_type="hidden_states", layer_indices=(0, 7))
    with pytest.raises(
        FileNotFoundError, match=r"teacher_model path '\./no/such/teacher' does not exist"
    ):
        _job(corpus, "./no/such/teacher")


def test_push_every_below_chunk_size_makes_shards_of_push_every_rows(corpus, teacher_dense, caplog):
    with caplog.at_level("INFO"):
        job = prepare_encoding(
            corpus, EncodingConfig(teacher_model=teacher_dense, push_every=20), CPU
        )  # default chunk_size 1000
    assert (
        "push_every (20) is smaller than chunk_size (1000): writing shards of 20 rows, so that "
        "every push adds push_every rows" in caplog.text
    )
    assert (job.shard_size, job.num_shards) == (20, 3)
    assert job.settings_identity()["chunk_size"] == 20
