"""``EmbeddingTrainerConfig``: the seed's training options (and a few documented extras)."""

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from embedding_distillation import extras
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.encoding.config import FINAL_COLUMN, PRE_DENSE_COLUMN
from embedding_distillation.params import from_params, layer_list

TargetType = Literal["final", "pre_dense"]
LossType = Literal["mse", "cosine", "similarity"]
Projection = Literal["learned", "pca", "none"]
ProjectionInit = Literal["orthogonal", "least_squares"]
BestMetric = Literal["sts_dev", "heldout_cosine"]
StudentType = Literal["transformer", "static"]

COMPUTE_FIELDS = (
    "device",
    "use_fp16",
    "use_bf16",
    "compile_model",
    "use_flash_attention",
    "gradient_checkpointing",
)


@dataclass(frozen=True)
class EmbeddingTrainerConfig:
    """Options of a distillation run. Every seed field keeps the seed's name and default.

    Attributes:
        student_model: Hub id or local folder of the student sentence-transformer.
        target_type: ``final`` trains the whole student against the teacher's final embeddings;
            ``pre_dense`` trains the student's backbone (output before its first Dense layer)
            against the teacher's pre-Dense embeddings.
        learning_rate: Peak learning rate.
        num_epochs: Passes over the training rows.
        batch_size: Training batch size.
        warmup_ratio: Fraction of steps with linear warmup.
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient clipping norm.
        loss_type: ``mse`` or ``cosine`` (1 - cosine similarity); Extra: ``similarity`` trains on
            the similarity term alone (``similarity_weight`` x the MSE between the in-batch
            cosine-similarity matrices of student and teacher), without pulling the student
            towards the teacher's coordinates: the loss that kept or raised STS-B in
            ``benchmarks/RESULTS_quality.md``.
        text_column: Column holding the texts.
        final_embedding_column: Column with the teacher's final embeddings.
        pre_dense_embedding_column: Column with the teacher's pre-Dense embeddings.
        output_dir: Where checkpoints (and, from the Python API, the final model) are saved.
        save_steps: Checkpoint every N optimizer steps.
        logging_steps: Log loss every N optimizer steps.
        push_to_hub: Push the trained student to the Hub.
        hub_model_id: Model repo for the push.
        hub_token: Hub token (never logged or shown). Python API only: the pipeline takes it
            from the catalog's credentials, never from the parameters.
        use_fp16: Mixed precision float16.
        use_bf16: Mixed precision bfloat16.
        compile_model: ``torch.compile`` the student.
        use_flash_attention: flash_attention_2 where usable, else sdpa (one warning).
        gradient_checkpointing: Recompute activations to save memory.
        device: Extra: ``auto``, ``cuda``, ``mps`` or ``cpu``.
        projection: Extra: when the student's output size differs from the target's, ``learned``
            appends a trainable ``Dense(student_dim -> target_dim)`` (kept in the saved model,
            before any ``Normalize``); ``pca`` (student narrower than the target only) appends a
            frozen ``Dense`` holding the inverse of a PCA fitted on the training targets, so the
            student's own output learns the teacher's top ``student_dim`` principal components
            and the saved model still outputs in the teacher's space; ``none`` raises instead.
        projection_init: Extra: how a ``learned`` projection starts. ``orthogonal``: the
            orthogonal map that best rotates the student's embeddings onto the targets on up to
            ``PROJECTION_FIT_ROWS`` training rows (Procrustes; no bias), which keeps every cosine
            between two texts of a student no wider than the target, so training starts from
            the student's own quality; ``least_squares``: the ridge least-squares map (with a
            bias), closer to the targets but distorting the student's geometry.
        projection_warmup_steps: Extra: optimizer steps at the start that train the projection
            alone, the student's own weights frozen (linear probe, then fine-tune); 0 = off.
        projection_learning_rate: Extra: the projection's own peak learning rate (its own
            optimizer group); ``None`` = ``learning_rate``; 0 keeps it where it started.
        similarity_weight: Extra: this weight times the MSE between the in-batch
            cosine-similarity matrices of student and teacher embeddings: it asks the student
            to keep the teacher's relations between texts, which is what STS and retrieval
            measure. With ``mse``/``cosine`` it is added to the embedding loss (0 turns it
            off); with ``loss_type: similarity`` it is the whole loss and must be > 0.
        eval_steps: Extra: with evaluation data (held-out rows, STS-B dev pairs), evaluate every
            this many optimizer steps; the student is always evaluated before the first step
            and after the last one. ``None``: before and after only.
        metric_for_best_model: Extra: what picks the best evaluated step: ``sts_dev`` (STS
            Benchmark dev Spearman) or ``heldout_cosine`` (mean cosine to the teacher on the
            held-out sample); ``None``: ``sts_dev`` when STS-B dev pairs are given, else
            ``heldout_cosine``.
        load_best_model_at_end: Extra: end with the weights of the best evaluated step, step 0
            (the untrained student) included, so a run that only makes the student worse ends
            with the student it started from; ``False`` keeps the last step.
        allow_regression: Extra: push the student even when its STS-B dev score is more than
            0.2 points below the untrained student's (refused otherwise; see
            :mod:`embedding_distillation.evaluation.regression`).
        seed: Extra: random seed for initialisation and shuffling.
        split: Extra: split to read when the dataset is a Hub id or folder with several.
        resume_from_checkpoint: Extra: continue an interrupted run from a checkpoint folder in
            ``output_dir`` (a path, or ``True`` for the latest one); checkpoints hold the
            optimizer, scheduler and RNG states, so the run ends as an uninterrupted one would.
        student_init: Extra: build the student from ``student_model`` (usually the teacher) by
            keeping only these transformer layers, in order, e.g. ``(0, 2, 4, 6, 8, 10)`` for
            every other layer of 12; ``None`` loads ``student_model`` as it is.
        hidden_state_layer_map: Extra: ``{student_layer: teacher_layer}``; adds a loss term that
            matches the attention-mask mean of each mapped student layer (0 = embeddings output)
            to the teacher's stored ``hidden_state_layer_<teacher_layer>`` column, through a
            trainable linear map when widths differ (used by the loss only, not saved with the
            model). ``None`` (default) turns the term off.
        hidden_state_weight: Extra: the hidden-state term (mean MSE over the mapped layers) is
            added to the embedding loss times this weight.
        push_checkpoints: Extra: with ``push_to_hub``, also upload every checkpoint (each
            ``save_steps``: weights, optimizer, scheduler and RNG states) to
            ``checkpoints/checkpoint-<step>/`` of ``hub_model_id``, so that a run can resume on
            another machine; a failed checkpoint push is logged and training goes on.
        group_by_length: Extra: build each batch from texts of similar length (shuffled windows
            sorted by length, then shuffled batches), which cuts padding and so training time;
            ``False`` uses plain random batches.
        student_type: Extra: ``transformer`` loads ``student_model`` as a sentence-transformer;
            ``static`` makes a ``StaticEmbedding`` student (a mean of per-token vectors, no
            attention: on a CPU hundreds of times faster than a transformer) from model2vec's
            distillation of the vocabulary of ``student_model`` (normally the teacher's folder;
            a folder that already holds a static sentence-transformer is loaded as it is),
            followed by ``Normalize``, and trains it with the same losses and projection. A
            static student needs a far larger ``learning_rate`` than a transformer (see
            ``training/static.py``); ``student_init``, ``hidden_state_layer_map`` and
            ``target_type: pre_dense`` are refused with it. It needs the ``static`` extra
            (model2vec, skeletoken), checked here, unless ``student_model`` is a local folder
            that already holds a static model.
        static_pca_dims: Extra, static students only: the distilled token vectors are reduced
            to this many principal components (at most the model's width; ``null`` keeps the
            raw vectors, without PCA). Narrower than the target, the student gets a projection
            (``projection``) to the target's size.
        static_sif_coefficient: Extra, static students only: token vectors are weighted by
            ``a / (a + p)``, ``p`` the token's frequency estimated from its vocabulary rank
            (Zipf), ``a`` this coefficient (SIF weighting, model2vec's default 1e-4): frequent
            tokens count less in the mean; ``null`` weights every token alike.
    """

    student_model: str
    target_type: TargetType = "final"
    learning_rate: float = 2e-5
    num_epochs: int = 3
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    loss_type: LossType = "mse"
    text_column: str = "text"
    final_embedding_column: str = FINAL_COLUMN
    pre_dense_embedding_column: str = PRE_DENSE_COLUMN
    output_dir: str = "./trained_model"
    save_steps: int = 1000
    logging_steps: int = 100
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = field(default=None, repr=False)
    use_fp16: bool = False
    use_bf16: bool = False
    compile_model: bool = False
    use_flash_attention: bool = False
    gradient_checkpointing: bool = False
    device: str = "auto"
    projection: Projection = "learned"
    projection_init: ProjectionInit = "orthogonal"
    projection_warmup_steps: int = 0
    projection_learning_rate: float | None = None
    similarity_weight: float = 0.0
    eval_steps: int | None = None
    metric_for_best_model: BestMetric | None = None
    load_best_model_at_end: bool = True
    allow_regression: bool = False
    seed: int = 42
    split: str = "train"
    resume_from_checkpoint: str | bool | None = None
    student_init: tuple[int, ...] | None = None
    hidden_state_layer_map: dict[int, int] | None = None
    hidden_state_weight: float = 1.0
    push_checkpoints: bool = False
    group_by_length: bool = True
    student_type: StudentType = "transformer"
    static_pca_dims: int | None = 256
    static_sif_coefficient: float | None = 1e-4

    def __post_init__(self) -> None:
        if isinstance(self.student_model, os.PathLike):
            object.__setattr__(self, "student_model", os.fspath(self.student_model))
        if not self.student_model or not isinstance(self.student_model, str):
            raise ValueError("student_model is required: a Hub id or a local model folder.")
        _check_choice("target_type", self.target_type, get_args(TargetType))
        _check_choice("loss_type", self.loss_type, get_args(LossType))
        _check_choice("projection", self.projection, get_args(Projection))
        _check_choice("student_type", self.student_type, get_args(StudentType))
        for name in ("num_epochs", "batch_size", "save_steps", "logging_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        _check_training_extras(self)
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError(
                "push_to_hub is true but hub_model_id is not set; give the model repo id, "
                "e.g. hub_model_id='your-name/distilled-model'."
            )
        if self.push_checkpoints and not self.push_to_hub:
            raise ValueError(
                "push_checkpoints is true but push_to_hub is false; set push_to_hub: true and "
                "hub_model_id to push the checkpoints, or push_checkpoints: false."
            )
        if self.student_init is not None:
            _check_layers(self.student_init)
            object.__setattr__(self, "student_init", tuple(self.student_init))
        if self.hidden_state_layer_map is not None:
            _check_layer_map(self.hidden_state_layer_map)
            object.__setattr__(self, "hidden_state_layer_map", dict(self.hidden_state_layer_map))
        weight = self.hidden_state_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ValueError(f"hidden_state_weight must be a number > 0, got {weight!r}.")
        if not math.isfinite(weight):
            raise ValueError(f"hidden_state_weight must be finite, got {weight!r}.")
        _check_static_options(self)
        self.compute  # validates device and precision flags  # noqa: B018

    @property
    def compute(self) -> ComputeConfig:
        """The device and precision options as a :class:`ComputeConfig`."""
        return ComputeConfig(
            batch_size=self.batch_size, **{name: getattr(self, name) for name in COMPUTE_FIELDS}
        )

    @property
    def target_column(self) -> str:
        """The embedding column the student is trained against."""
        if self.target_type == "final":
            return self.final_embedding_column
        return self.pre_dense_embedding_column

    @classmethod
    def from_params(
        cls,
        params: dict[str, Any],
        compute: dict[str, Any] | None = None,
        *,
        hub_token: str | None = None,
        group: str = "distillation",
    ) -> "EmbeddingTrainerConfig":
        """Build from the Kedro ``distillation`` group, taking device/precision from ``compute``.

        ``compute.batch_size`` is the encoding batch size and is not used for training. The Hub
        token is never a parameter (parameters show in kedro-viz and in logs): the pipeline
        passes ``hub_token`` from the catalog's credentials. ``group`` names the parameters in
        error messages (``students.static`` for one student's merged options).
        """
        params = dict(params)
        if params.pop("hub_token", None) is not None:  # null (older parameter files): dropped
            raise ValueError(
                f"{group}.hub_token is set, but a Hub token is not a parameter: parameters "
                f"show in kedro-viz and in run logs. Remove hub_token from the {group} "
                "parameters (and from --params) and put the token in "
                "conf/local/credentials.yml as 'huggingface: {token: ...}' (see "
                "conf/local/credentials.example.yml), or set HF_TOKEN. The Python API keeps "
                "EmbeddingTrainerConfig(hub_token=...)."
            )
        shared = ComputeConfig.from_params(compute).to_dict()
        merged = {name: shared[name] for name in COMPUTE_FIELDS} | dict(params)
        if hub_token:
            merged["hub_token"] = hub_token
        if merged.get("student_init") is not None:
            merged["student_init"] = layer_list(merged["student_init"])
        if isinstance(merged.get("hidden_state_layer_map"), Mapping):
            # ``--params distillation.hidden_state_layer_map.3=6`` gives string keys.
            layer_map = merged["hidden_state_layer_map"]
            merged["hidden_state_layer_map"] = {
                _int_or_same(k): _int_or_same(v) for k, v in layer_map.items()
            }
        return from_params(cls, merged, group=group)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields, without the token."""
        values = asdict(self)
        values["hub_token"] = "***" if self.hub_token else None
        return values


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_training_extras(config: EmbeddingTrainerConfig) -> None:
    """The head, similarity and in-training evaluation options (bool is not a number here)."""
    _check_choice("projection_init", config.projection_init, get_args(ProjectionInit))
    if config.metric_for_best_model is not None:
        _check_choice("metric_for_best_model", config.metric_for_best_model, get_args(BestMetric))
    warmup = config.projection_warmup_steps
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise ValueError(
            f"projection_warmup_steps must be an integer >= 0, got {warmup!r}: the number of "
            "first optimizer steps that train the projection alone (0 = off)."
        )
    head_lr = config.projection_learning_rate
    if head_lr is not None and not (_is_number(head_lr) and head_lr >= 0):
        raise ValueError(
            f"projection_learning_rate must be a number >= 0 or null, got {head_lr!r}; null "
            "trains the projection at learning_rate, 0 keeps it where it started."
        )
    weight = config.similarity_weight
    if not (_is_number(weight) and weight >= 0):
        raise ValueError(
            f"similarity_weight must be a number >= 0, got {weight!r}; 0 turns the "
            "similarity-matrix term off."
        )
    if config.loss_type == "similarity" and config.batch_size < 2:
        raise ValueError(
            "loss_type 'similarity' compares the texts within a batch, so it needs batch_size "
            f">= 2, got {config.batch_size}: raise batch_size, or pick loss_type mse or cosine."
        )
    if config.loss_type == "similarity" and not weight > 0:
        raise ValueError(
            "loss_type 'similarity' trains on the similarity-matrix term alone, so it needs "
            f"similarity_weight > 0, got {weight!r}: set similarity_weight (conf/base uses 20), "
            "or pick loss_type mse or cosine."
        )
    for name in ("load_best_model_at_end", "allow_regression"):
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}.")
    steps = config.eval_steps
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        raise ValueError(
            f"eval_steps must be a positive integer or null, got {steps!r}; null evaluates "
            "before the first and after the last step only."
        )


def _check_static_options(config: EmbeddingTrainerConfig) -> None:
    """The ``static_*`` values, and no option that a static student cannot honour."""
    dims = config.static_pca_dims
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise ValueError(
            f"static_pca_dims must be a positive integer or null, got {dims!r}. Give the number "
            "of principal components to keep, e.g. 256, or null to keep the distilled vectors "
            "without PCA."
        )
    sif = config.static_sif_coefficient
    if sif is not None and (
        isinstance(sif, bool) or not isinstance(sif, int | float) or not 0 < sif < 1
    ):
        raise ValueError(
            f"static_sif_coefficient must be a number in (0, 1) or null, got {sif!r}. "
            "model2vec's default is 1e-4; null turns the SIF weighting off."
        )
    if config.student_type != "static":
        return
    from embedding_distillation.training.static import is_static_folder

    if not is_static_folder(config.student_model):  # a static folder loads without model2vec
        extras.require(
            "static",
            f"student_type 'static' (model2vec's distillation of {config.student_model!r})",
            otherwise="use student_type: transformer",
        )
    refused = {
        "student_init": (
            config.student_init is not None,
            "a static student has no transformer layers to keep; set student_init: null",
        ),
        "hidden_state_layer_map": (
            config.hidden_state_layer_map is not None,
            "a static student has no hidden layers to match; set hidden_state_layer_map: null",
        ),
        "target_type": (
            config.target_type == "pre_dense",
            "a static student learns the teacher's final embeddings through its projection "
            "and keeps its Normalize (trained without it, students collapsed); set "
            "target_type: final",
        ),
    }
    for name, (is_set, fix) in refused.items():
        if is_set:
            raise ValueError(
                f"{name} {getattr(config, name)!r} does not apply to student_type 'static': "
                f"{fix}, or use student_type: transformer."
            )


def _check_layers(layers: object) -> None:
    """``student_init`` must be a non-empty, strictly increasing list of layer indices >= 0."""
    fix = (
        "Give a non-empty, strictly increasing list of layer indices >= 0 to keep, e.g. "
        "[0, 2, 4, 6, 8, 10] for every other layer of 12, or null to load student_model as is."
    )
    if isinstance(layers, str) or not isinstance(layers, list | tuple) or not layers:
        raise ValueError(f"student_init must be a non-empty list of layers, got {layers!r}. {fix}")
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
        raise ValueError(f"student_init indices must be integers >= 0, got {layers!r}. {fix}")
    if any(b <= a for a, b in itertools.pairwise(layers)):
        raise ValueError(f"student_init must be strictly increasing, got {layers!r}. {fix}")


def _int_or_same(value: object) -> object:
    """``"3"`` -> 3 (command-line params are strings); anything else unchanged."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _check_layer_map(layer_map: object) -> None:
    """``hidden_state_layer_map`` must map student layer indices >= 0 to teacher ones >= 0."""
    fix = (
        "Give a mapping {student_layer: teacher_layer} of integers >= 0 (0 = embeddings "
        "output), e.g. {3: 6, 6: 12}, or null to turn the hidden-state loss off."
    )
    if not isinstance(layer_map, Mapping) or not layer_map:
        raise ValueError(
            f"hidden_state_layer_map must be a non-empty mapping, got {layer_map!r}. {fix}"
        )
    for key, value in layer_map.items():
        for index in (key, value):
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise ValueError(
                    f"hidden_state_layer_map entries must be integers >= 0, got {key!r}: "
                    f"{value!r}. {fix}"
                )
