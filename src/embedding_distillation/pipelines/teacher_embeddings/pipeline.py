"""The ``teacher_embeddings`` pipeline: corpus -> teacher embeddings (shards + manifest) -> Hub."""

from kedro.pipeline import Node, Pipeline

from embedding_distillation.pipelines.teacher_embeddings.nodes import (
    encode_corpus,
    push_teacher_embeddings,
    select_corpus,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Select the corpus rows, encode them with the teacher, push them to the Hub."""
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
                inputs=[
                    "selected_corpus",
                    "params:teacher_embeddings",
                    "params:compute",
                    "teacher_embeddings_writer",
                    "hub_credentials",
                ],
                outputs="teacher_embeddings",
                name="encode_corpus",
            ),
            Node(
                func=push_teacher_embeddings,
                inputs=["teacher_embeddings", "params:teacher_embeddings"],
                outputs="teacher_embeddings_hub",
                name="push_teacher_embeddings",
            ),
        ]
    )
