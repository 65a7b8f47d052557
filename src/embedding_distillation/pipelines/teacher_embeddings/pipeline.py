"""The ``teacher_embeddings`` pipeline: corpus -> teacher embeddings (shards + manifest)."""

from kedro.pipeline import Node, Pipeline

from embedding_distillation.pipelines.teacher_embeddings.nodes import encode_corpus, select_corpus


def create_pipeline(**kwargs) -> Pipeline:
    """Select the corpus rows, then encode them with the teacher."""
    return Pipeline(
        [
            Node(
                func=select_corpus,
                inputs=["corpus", "params:teacher_embeddings"],
                outputs="selected_corpus",
                name="select_corpus",
            ),
            Node(
                func=encode_corpus,
                inputs=["selected_corpus", "params:teacher_embeddings", "params:compute"],
                outputs="teacher_embeddings",
                name="encode_corpus",
            ),
        ]
    )
