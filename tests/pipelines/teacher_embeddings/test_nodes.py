import pytest

from embedding_distillation.datasets import EmbeddingShardsDataset
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.output import FolderOutput
from embedding_distillation.encoding.shards import ShardStore
from embedding_distillation.pipelines.teacher_embeddings.nodes import (
    encode_corpus,
    push_teacher_embeddings,
    select_corpus,
)


def test_select_corpus_keeps_the_text_column_of_the_first_max_samples_rows(corpus):
    selected = select_corpus(corpus, {"teacher_model": "t", "max_samples": 7})
    assert selected["text"] == corpus["text"][:7]
    assert selected.column_names == ["text"]
    assert len(corpus) == 50 and corpus.column_names == ["text", "source"]  # input unchanged


def test_select_corpus_checks_the_text_column(corpus):
    with pytest.raises(ValueError, match="Text column 'body' not found"):
        select_corpus(corpus, {"teacher_model": "t", "text_column": "body"})


def test_select_corpus_rejects_unknown_parameters(corpus):
    with pytest.raises(
        ValueError, match=r"Unknown key\(s\) \['chunksize'\] in the 'teacher_embeddings'"
    ):
        select_corpus(corpus, {"teacher_model": "t", "chunksize": 5})


def _output(tmp_path):
    return FolderOutput(tmp_path / "emb")


def test_encode_corpus_encodes_into_the_output_folder(tmp_path, corpus, teacher_dense):
    store = encode_corpus(
        corpus,
        {"teacher_model": teacher_dense, "chunk_size": 20},
        {"device": "cpu"},
        _output(tmp_path),
    )
    assert isinstance(store, ShardStore) and store.folder == tmp_path / "emb"
    manifest = store.manifest()
    assert manifest["complete"] and manifest["num_rows"] == 50 and len(manifest["shards"]) == 3
    assert manifest["provenance"]["teacher_model"] == teacher_dense


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
def test_bad_parameters_are_named(tmp_path, corpus, params, message):
    with pytest.raises(ValueError, match=message):
        encode_corpus(corpus, {"teacher_model": "t", **params}, {}, _output(tmp_path))
    assert not (tmp_path / "emb").exists()


def test_layer_indices_come_from_the_command_line_as_numbers_separated_by_spaces():
    config = EncodingConfig.from_params(
        {"teacher_model": "t", "output_type": "hidden_states", "layer_indices": "6 0 12"}
    )
    assert config.layer_indices == (0, 6, 12)


def test_push_teacher_embeddings_asks_for_a_push_only_with_push_every(
    tmp_path, corpus, teacher_dense
):
    params = {"teacher_model": teacher_dense, "repo_id": "alice/emb", "private": False}
    stored = EmbeddingShardsDataset(filepath=str(tmp_path / "emb"))
    stored.save(encode_corpus(corpus, params, {"device": "cpu"}, _output(tmp_path)))
    embeddings = stored.load()
    assert push_teacher_embeddings(embeddings, params).push_every is None
    request = push_teacher_embeddings(embeddings, {**params, "push_every": 20})
    assert (request.push_every, request.repo_id, request.private) == (20, "alice/emb", False)
    assert request.embeddings is embeddings
