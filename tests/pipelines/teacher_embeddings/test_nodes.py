import pytest

from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import EncodingJob
from embedding_distillation.pipelines.teacher_embeddings.nodes import encode_corpus, select_corpus


def test_select_corpus_keeps_the_first_max_samples_rows(corpus):
    selected = select_corpus(corpus, {"teacher_model": "t", "max_samples": 7})
    assert selected["text"] == corpus["text"][:7]
    assert len(corpus) == 50  # the input is not changed


def test_select_corpus_checks_the_text_column(corpus):
    with pytest.raises(ValueError, match="Text column 'body' not found"):
        select_corpus(corpus, {"teacher_model": "t", "text_column": "body"})


def test_select_corpus_rejects_unknown_parameters(corpus):
    with pytest.raises(
        ValueError, match=r"Unknown key\(s\) \['chunksize'\] in the 'teacher_embeddings'"
    ):
        select_corpus(corpus, {"teacher_model": "t", "chunksize": 5})


def test_encode_corpus_returns_a_validated_job_without_loading_the_teacher(corpus, teacher_dense):
    job = encode_corpus(
        corpus, {"teacher_model": teacher_dense, "chunk_size": 20}, {"device": "cpu"}
    )
    assert isinstance(job, EncodingJob)
    assert (job.num_rows, job.num_shards) == (50, 3)
    assert job._encoder is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"output_type": "tokens"},
            r"output_type must be one of \['final', 'pre_dense', 'hidden_states'\], got 'tokens'",
        ),
        ({"embedding_dtype": "int8"}, r"embedding_dtype must be one of \['float32', 'float16'\]"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer, got 0"),
        ({"layer_indices": [-1]}, "layer_indices must be null"),
    ],
)
def test_bad_parameters_are_named(corpus, params, message):
    with pytest.raises(ValueError, match=message):
        encode_corpus(corpus, {"teacher_model": "t", **params}, {})


def test_layer_indices_come_from_the_command_line_as_numbers_separated_by_spaces():
    config = EncodingConfig.from_params(
        {"teacher_model": "t", "output_type": "hidden_states", "layer_indices": "6 0 12"}
    )
    assert config.layer_indices == (0, 6, 12)
