"""The ``teacher_embeddings`` parameter group as one validated, frozen dataclass."""

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from embedding_distillation.params import from_params, layer_list

OutputType = Literal["final", "pre_dense", "hidden_states"]
OUTPUT_TYPES: tuple[str, ...] = get_args(OutputType)
EmbeddingDtype = Literal["float32", "float16"]
InvalidTexts = Literal["skip", "fail"]

FINAL_COLUMN = "teacher_embedding_final"
PRE_DENSE_COLUMN = "teacher_embedding_pre_dense"
ROW_ID_COLUMN = "row_id"


def hidden_state_column(layer: int) -> str:
    """Column name of the mean-pooled hidden state of ``layer`` (0 = embeddings output)."""
    return f"hidden_state_layer_{layer}"


@dataclass(frozen=True)
class EncodingConfig:
    """What to encode and how to store it (seed names where the seed has them).

    Attributes:
        teacher_model: Hub id or local folder of the teacher sentence-transformer.
        text_column: Column of the corpus that holds the texts.
        output_type: ``final`` (final + pre-Dense), ``pre_dense``, or ``hidden_states``.
        layer_indices: Layers for ``hidden_states``; ``None`` means all (0 = embeddings output).
            One layer may be given as a number; each must be at most the teacher's layer count
            (checked against its config before encoding).
        max_samples: Encode only the first N rows of the corpus (``None`` = all).
        chunk_size: Rows per stored shard (the unit of resume and of Hub pushes).
        embedding_dtype: Storage dtype of the embedding columns.
        invalid_texts: ``skip`` None/empty/non-string texts (counted in the log) or ``fail``.
        max_tokens_per_batch: When set, batches are filled up to this many tokens instead of
            ``compute.batch_size`` texts. Texts are sorted by length within each shard.
        push_every: Push completed shards to the Hub every N rows (``None`` = never).
        repo_id: Dataset repo for pushes (``None`` = ``<user>/<corpus name>-embeddings``).
        private: Create the dataset repo as private.
        split: Split name of the source corpus, and of the pushed data.
    """

    teacher_model: str
    text_column: str = "text"
    output_type: OutputType = "final"
    layer_indices: tuple[int, ...] | None = None
    max_samples: int | None = None
    chunk_size: int = 1000
    embedding_dtype: EmbeddingDtype = "float32"
    invalid_texts: InvalidTexts = "skip"
    max_tokens_per_batch: int | None = None
    push_every: int | None = None
    repo_id: str | None = None
    private: bool = True
    split: str = "train"

    def __post_init__(self) -> None:
        if isinstance(self.teacher_model, os.PathLike):
            object.__setattr__(self, "teacher_model", os.fspath(self.teacher_model))
        if not self.teacher_model or not isinstance(self.teacher_model, str):
            raise ValueError(
                "teacher_embeddings.teacher_model is required: a Hub id or a local model folder."
            )
        _check_choice("output_type", self.output_type, OUTPUT_TYPES)
        _check_choice("embedding_dtype", self.embedding_dtype, get_args(EmbeddingDtype))
        _check_choice("invalid_texts", self.invalid_texts, get_args(InvalidTexts))
        if self.layer_indices is not None:
            layers = layer_list(self.layer_indices)  # one layer, as from --params, is a list of one
            if (
                not isinstance(layers, tuple)
                or not layers
                or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in layers)
            ):
                raise ValueError(
                    "teacher_embeddings.layer_indices must be null (all layers), one layer number "
                    f"or a non-empty list of layer numbers >= 0, got {self.layer_indices!r}. "
                    "Layer 0 is the embeddings output; e.g. [6, 12], or '6 12' from the command "
                    "line."
                )
            object.__setattr__(self, "layer_indices", tuple(sorted(set(layers))))
        _check_positive("chunk_size", self.chunk_size)
        for name in ("max_samples", "max_tokens_per_batch", "push_every"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "EncodingConfig":
        """Build from the Kedro ``teacher_embeddings`` parameter group."""
        return from_params(cls, params, group="teacher_embeddings")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"teacher_embeddings.{name} must be one of {list(allowed)}, got {value!r}."
        )


def _check_positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"teacher_embeddings.{name} must be a positive integer, got {value!r}.")
