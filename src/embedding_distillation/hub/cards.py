"""Cards for what we push: the embeddings dataset card and the distilled model's card.

Both are a README.md with a YAML header. The dataset card's header holds the features (so
``datasets.load_dataset`` knows the columns and dtypes without reading a shard), the data
files of the split, and what made the embeddings; the model card adds the teacher, the data,
the training configuration and the evaluation metrics to the card sentence-transformers writes.
"""

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCardData, ModelCard

from embedding_distillation.hub_client import redact

SECRET_KEYS = frozenset({"hub_token", "token"})


def current_command() -> str:
    """The command line of this process, as a shell would read it (tokens redacted)."""
    return redact(shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))


@dataclass(frozen=True)
class EmbeddingsCardInfo:
    """What made the embeddings, for the dataset card."""

    source_dataset: str
    teacher_model: str
    output_type: str
    layers: list[int] | None
    embedding_dtype: str
    split: str
    command: str = field(default_factory=current_command)


def dataset_card(
    manifest: dict[str, Any], first_shard: Path, info: EmbeddingsCardInfo, repo_id: str
) -> str:
    """The README.md of the embeddings repo ``repo_id`` for the shards listed in ``manifest``.

    The features are read from the schema of ``first_shard``.
    """
    features = Features.from_arrow_schema(pq.read_schema(first_shard))
    num_rows = int(manifest["num_rows"])
    splits = SplitDict()
    splits.add(SplitInfo(name=info.split, num_examples=num_rows))
    data = DatasetCardData(
        pretty_name=f"{info.source_dataset} embeddings from {info.teacher_model}",
        tags=["embeddings", "sentence-transformers", "embedding-distillation"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": info.split, "path": f"data/{info.split}-*.parquet"}],
            }
        ],
        source_dataset=info.source_dataset,
        teacher_model=info.teacher_model,
        output_type=info.output_type,
        layers=info.layers,
        embedding_dtype=info.embedding_dtype,
        num_rows=num_rows,
        complete=bool(manifest["complete"]),
        command=info.command,
    )
    DatasetInfosDict(
        {"default": DatasetInfo(features=features, splits=splits)}
    ).to_dataset_card_data(data)
    state = "complete" if manifest["complete"] else "in progress (more shards follow)"
    if info.output_type != "hidden_states":
        layers = "n/a"
    else:
        layers = ", ".join(map(str, info.layers)) if info.layers is not None else "all"
    columns = "\n".join(f"- `{name}`: {_describe(feature)}" for name, feature in features.items())
    body = f"""
# {info.source_dataset} embeddings from {info.teacher_model}

Teacher embeddings of `{info.source_dataset}` (split `{info.split}`), made with the teacher
`{info.teacher_model}` (`output_type: {info.output_type}`, layers: {layers}),
stored as {info.embedding_dtype}. {num_rows:,} rows in {len(manifest["shards"])} shards;
{state}.

Columns:
{columns}

```python
from datasets import load_dataset
dataset = load_dataset("{repo_id}", split="{info.split}")
```

Made with: `{info.command}`. `manifest.json` lists the shards and what must match for a run
to continue this one.
"""
    return redact(f"---\n{data.to_yaml()}\n---\n{body}")


def _describe(feature: Any) -> str:
    text = repr(feature)
    return text.replace("\n", " ")


@dataclass(frozen=True)
class ModelCardInfo:
    """What the model card records beyond sentence-transformers' own card."""

    teacher_model: str | None = None
    training_data: str | None = None
    training_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: str | None = None  # the Markdown distillation report, shown on the card


def add_distillation_section(readme: Path, info: ModelCardInfo, token: str | None) -> None:
    """Add the teacher, data, training config and metrics to the model card at ``readme``."""
    card = ModelCard.load(readme) if readme.exists() else ModelCard("---\n---\n")
    card.data["tags"] = [*(card.data.get("tags") or []), "embedding-distillation"]
    if info.teacher_model:
        card.data["teacher_model"] = info.teacher_model
    if info.training_data:
        card.data["training_data"] = info.training_data
    config = {k: v for k, v in info.training_config.items() if k not in SECRET_KEYS}
    metrics = _flatten(info.metrics)
    rows = "\n".join(f"| {key} | {_number(value)} |" for key, value in metrics.items())
    section = f"""

## Distillation

- Teacher: `{info.teacher_model or "not recorded"}`
- Training data: `{info.training_data or "not recorded"}`

### Training configuration

```json
{json.dumps(config, indent=2, sort_keys=True, default=str)}
```

{_report_section(info.report)}{_exports_section(info.metrics)}
### Evaluation

| metric | value |
|---|---|
{rows}
"""
    card.text = card.text + section
    readme.write_text(redact(str(card), token))


def _report_section(report: str | None) -> str:
    """The distillation report under a heading of the card ("" without one).

    Its own title is dropped and its headings go two levels down, under "## Distillation".
    """
    if not report:
        return ""
    lines = report.strip().splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    body = "\n".join(f"##{line}" if line.startswith("#") else line for line in lines).strip()
    return f"### Report\n\n{body}\n\n"


def _exports_section(metrics: dict[str, Any]) -> str:
    """A table of the exports in the repo with their measured figures ("" without exports)."""
    from embedding_distillation.export.formats import FORMATS

    rows = []
    for name, export_format in FORMATS.items():
        entry = metrics.get(name)
        if not isinstance(entry, dict):
            continue
        sts = entry.get("sts_benchmark", {})
        cells = [
            export_format.label,
            f"`{export_format.file}`",
            _figure(entry.get("cost", {}).get("size_mb"), ".1f"),
            _figure(entry.get("cost", {}).get("texts_per_second"), ".1f"),
            _figure(sts.get("spearman"), ".2f"),
            _figure(sts.get("percent_of_student"), ".1f"),
            _figure(entry.get("agreement", {}).get("min_cosine"), ".6f"),
            entry.get("verdict", "n/a"),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return ""
    table = "\n".join(rows)
    return f"""### Exports

Run without torch: `from embedding_distillation.export import load_encoder`, then
`load_encoder(folder, "onnx_int8").encode(texts)` (onnxruntime or openvino, and tokenizers).
STS-B: STS Benchmark test split, cosine Spearman x100; texts/s measured on this run's machine.

| format | file | size MB | texts/s | STS-B | % of student | min cosine to student | verdict |
|---|---|---|---|---|---|---|---|
{table}

"""


def _figure(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics -> ``{"student_after.mse": 0.01, ...}``: numbers and strings only."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str) and key not in SECRET_KEYS:
            flat[name] = value
    return flat


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
