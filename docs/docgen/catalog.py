"""The pipelines and the catalog: every node and every dataset, read from the project's files.

Nodes come from the ``Node(...)`` declarations of ``pipelines/*/pipeline.py`` (read with
:mod:`ast`: declarations only, as the house style has them), each described by its function's
docstring. Catalog entries come from ``conf/base/catalog.yml``; an entry is described by
:data:`DESCRIPTIONS` below or, failing that, by the comment on its key line or just above it.
An entry or a node without a description is a problem: the build fails on it.
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import griffe
import yaml

from docgen.configuration import environments
from docgen.project import BASE, CONF, PACKAGE, SRC, member, one_line
from docgen.rst import rst_to_markdown

# Catalog entries whose catalog.yml comment is missing or too terse to stand alone.
DESCRIPTIONS = {
    "corpus": "The texts to encode: a local parquet/jsonl/json/csv/tsv/txt/arrow file, a folder, "
    "or a Hub dataset id (`source`), read memory-mapped or, with `streaming`, as a stream; "
    "`credentials: huggingface` gives a private Hub dataset its token.",
    "hub_credentials": "Read-only: the Hub token of the `huggingface` credentials, which "
    "`encode_corpus` pushes shards with while it encodes (`teacher_embeddings.push_every`) and "
    "`train_student_model` pushes its checkpoints with (`distillation.push_checkpoints`); a "
    "token is never a parameter, and the dataset describes it as `***`.",
    "training_metrics": "What the trainer reports: mean training loss, steps, samples/s and the "
    "logged loss history.",
    "student_model": "The trained student, a sentence-transformers model folder (one version per "
    "run); load it with `SentenceTransformer(path)`.",
    "distillation_metrics": "Every evaluation figure of the run, per model (teacher, student "
    "before and after training, exports): what the report, the plots and the model card show.",
    "distillation_report": "The Markdown report: STS Benchmark and speed first, then the "
    "retrieval task (own and teacher-index), held-out agreement, neighbours, gold pairs, size and "
    "training figures.",
    "training_curves_plot": "Training loss, and STS-B dev and held-out cosine as evaluated "
    "while training, against optimizer step; the kept step marked (PNG).",
    "cosine_histogram_plot": "Histogram of each held-out row's cosine to its teacher embedding, "
    "student before and after training (PNG).",
    "quality_speed_plot": "Quality against texts/s (log scale), one marker per evaluated model "
    "named in the legend, an arrow from the untrained to the trained student: STS Benchmark "
    "Spearman, else gold Pearson, else held-out cosine to the teacher (PNG).",
}

KEY_LINE = re.compile(r"^([A-Za-z_][\w.-]*):(.*)$")
SEPARATOR = re.compile(r"-{4,}")


@dataclass(frozen=True)
class Entry:
    """One catalog entry."""

    name: str
    config: dict[str, Any]
    source: str  # its lines of catalog.yml, comments included
    comment: str  # the comment on its key line, or the comment block just above it


@dataclass(frozen=True)
class PipelineNode:
    """One ``Node(...)`` of a pipeline."""

    pipeline: str
    name: str
    func: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    summary: str


def _comment(text: str) -> str:
    """The text of a YAML comment after its ``#``."""
    return text.split("#", 1)[1].strip() if "#" in text else ""


def catalog_entries(path: Path = BASE / "catalog.yml") -> list[Entry]:
    """The entries of a catalog file, in file order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    config = yaml.safe_load("\n".join(lines)) or {}
    starts = [i for i, line in enumerate(lines) if KEY_LINE.match(line)]
    entries = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(lines)
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1  # blank lines and the next entry's leading comments
        above = []
        for line in reversed(lines[:start]):
            if not line.startswith("#") or SEPARATOR.search(line):
                break
            above.insert(0, _comment(line))
        name = KEY_LINE.match(lines[start]).group(1)  # type: ignore[union-attr]
        on_line = _comment(KEY_LINE.match(lines[start]).group(2))  # type: ignore[union-attr]
        entries.append(
            Entry(
                name=name,
                config=config.get(name) or {},
                source="\n".join(lines[start:end]),
                comment=on_line or " ".join(above),
            )
        )
    return entries


def description(entry: Entry) -> str:
    """What a catalog entry holds (empty when nothing describes it)."""
    return DESCRIPTIONS.get(entry.name) or entry.comment


def _names(expr: ast.expr | None) -> tuple[str, ...]:
    """The dataset names of a node's ``inputs``/``outputs`` argument."""
    if expr is None:
        return ()
    value = ast.literal_eval(expr)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        return tuple(value.values())
    return tuple(value)


def _node_summary(pipeline: str, func: str) -> str:
    """The first line of the docstring of the function a node runs."""
    try:
        found = member(f"pipelines.{pipeline}.pipeline").members[func]
        docstring = found.docstring
    except (KeyError, griffe.AliasResolutionError):
        return ""
    return one_line(rst_to_markdown(docstring.value.split("\n\n")[0])) if docstring else ""


def pipeline_nodes(src: Path = SRC) -> dict[str, list[PipelineNode]]:
    """``{pipeline: nodes in declaration order}`` from every ``pipelines/*/pipeline.py``."""
    found: dict[str, list[PipelineNode]] = {}
    for path in sorted((src / PACKAGE / "pipelines").glob("*/pipeline.py")):
        pipeline = path.parent.name
        calls = [
            call
            for call in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(call, ast.Call) and ast.unparse(call.func) in ("Node", "node")
        ]
        nodes = []
        for call in sorted(calls, key=lambda c: c.lineno):
            arguments = {k.arg: k.value for k in call.keywords}
            func = ast.unparse(arguments["func"])
            nodes.append(
                PipelineNode(
                    pipeline=pipeline,
                    name=ast.literal_eval(arguments["name"]) if "name" in arguments else func,
                    func=func,
                    inputs=_names(arguments.get("inputs")),
                    outputs=_names(arguments.get("outputs")),
                    summary=_node_summary(pipeline, func),
                )
            )
        found[pipeline] = nodes
    return {pipeline: found[pipeline] for pipeline in _data_flow_order(found)}


def _data_flow_order(pipelines: dict[str, list[PipelineNode]]) -> list[str]:
    """Pipelines ordered so that one comes after those whose outputs it reads."""
    outputs = {p: {o for n in nodes for o in n.outputs} for p, nodes in pipelines.items()}
    inputs = {p: {i for n in nodes for i in n.inputs} for p, nodes in pipelines.items()}
    order: list[str] = []
    while len(order) < len(pipelines):
        ready = [
            p
            for p in pipelines
            if p not in order
            and not any(inputs[p] & outputs[q] for q in pipelines if q not in order and q != p)
        ]
        order.append(ready[0] if ready else next(p for p in pipelines if p not in order))
    return order


def dataset_link(name: str, catalog: set[str], page: str = "configuration.md") -> str:
    """A node input/output as a link to where it is documented."""
    if name.startswith("params:"):
        group = name.removeprefix("params:").split(".")[0]
        return f"[`{name}`]({page}#params-{group})"
    if name == "parameters":
        return f"[`parameters`]({page}#parameters)"
    if name in catalog:
        return f"[`{name}`]({page}#catalog-{name})"
    return f"`{name}` (in memory)"


def node_function(node: PipelineNode) -> str:
    """An autorefs link to the node's function in the API reference."""
    path = f"{PACKAGE}.pipelines.{node.pipeline}.nodes.{node.func}"
    return f"[`{node.func}`][{path}]"


def pipelines_markdown(src: Path = SRC, base: Path = BASE) -> tuple[str, list[str]]:
    """One node table per pipeline, and the undocumented nodes."""
    catalog = {entry.name for entry in catalog_entries(base / "catalog.yml")}
    lines: list[str] = []
    problems: list[str] = []
    for pipeline, nodes in pipeline_nodes(src).items():
        module = member(f"pipelines.{pipeline}.pipeline")
        text = one_line(rst_to_markdown(module.docstring.value)) if module.docstring else ""
        lines += [
            f"### `{pipeline}` {{#pipeline-{pipeline}}}",
            "",
            f"{text} Run it alone with `kedro run --pipeline {pipeline}`.",
            "",
            "| node | runs | inputs | outputs | what it does |",
            "|---|---|---|---|---|",
        ]
        for node in nodes:
            if not node.summary:
                problems.append(
                    f"pipeline {pipeline}: node {node.name} runs {node.func}, which has no "
                    "docstring"
                )
            ins = ", ".join(dataset_link(n, catalog) for n in node.inputs)
            outs = ", ".join(dataset_link(n, catalog) for n in node.outputs)
            summary = node.summary.replace("|", "\\|")
            lines.append(f"| `{node.name}` | {node_function(node)} | {ins} | {outs} | {summary} |")
        lines.append("")
    return "\n".join(lines), problems


Uses = dict[str, list[str]]


def _uses(nodes: dict[str, list[PipelineNode]]) -> tuple[Uses, Uses]:
    """``({dataset: nodes writing it}, {dataset: nodes reading it})``."""
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    for declared in nodes.values():
        for node in declared:
            for name in node.outputs:
                writers.setdefault(name, []).append(node.name)
            for name in node.inputs:
                readers.setdefault(name, []).append(node.name)
    return writers, readers


def _where(config: dict[str, Any]) -> str:
    """Where an entry's data lives: its ``filepath``, ``path`` or ``source``."""
    for key in ("filepath", "path", "source"):
        if key in config:
            return f"`{config[key]}`"
    return "nowhere on disk"


def _short_type(kind: str) -> str:
    """A dataset type as a link to the API reference, or as code.

    The reference documents what ``embedding_distillation.datasets`` exports (docs/api/datasets.md),
    so a project dataset links there by its exported name, whichever module path the catalog
    gives; one the package does not export is shown as code.
    """
    name = kind.rsplit(".", 1)[-1]
    if kind.startswith(f"{PACKAGE}.datasets.") and name in _exported_datasets():
        return f"[`{name}`][{PACKAGE}.datasets.{name}]"
    return f"`{kind}`"


def _exported_datasets() -> set[str]:
    """The names in ``embedding_distillation.datasets.__all__``."""
    exports = member("datasets").exports
    return {str(name) for name in exports or ()}


def _node_list(names: list[str]) -> str:
    """Node names as code, or "no node"."""
    return ", ".join(f"`{n}`" for n in dict.fromkeys(names)) or "no node"


def datasets_markdown(src: Path = SRC, base: Path = BASE) -> tuple[str, list[str]]:
    """The table of every dataset the pipelines use or the catalog declares."""
    entries = {entry.name: entry for entry in catalog_entries(base / "catalog.yml")}
    writers, readers = _uses(pipeline_nodes(src))
    names = list(entries) + [
        n for n in {**writers, **readers} if n not in entries and not n.startswith("params:")
    ]
    lines = [
        "| dataset | type | written by | read by | holds |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        entry = entries.get(name)
        kind = _short_type(entry.config.get("type", "?")) if entry else "in memory"
        link = f"[`{name}`](configuration.md#catalog-{name})" if entry else f"`{name}`"
        holds = description(entry) if entry else "Passed from node to node, not saved."
        lines.append(
            f"| {link} | {kind} | {_node_list(writers.get(name, []))} | "
            f"{_node_list(readers.get(name, []))} | {one_line(holds).replace('|', chr(92) + '|')} |"
        )
    return "\n".join(lines) + "\n", []


def catalog_markdown(src: Path = SRC, conf: Path = CONF) -> tuple[str, list[str]]:
    """One section per catalog entry of ``conf/base``, and the undocumented entries."""
    entries = catalog_entries(conf / "base" / "catalog.yml")
    writers, readers = _uses(pipeline_nodes(src))
    overridden = {
        env.name: {e.name for e in catalog_entries(path)}
        for env in environments(conf)
        for path in sorted(env.glob("catalog*.yml"))
    }
    stale = sorted(set(DESCRIPTIONS) - {entry.name for entry in entries})
    problems = [
        f"docs/docgen/catalog.py DESCRIPTIONS describes {name!r}, which conf/base/catalog.yml "
        "no longer has"
        for name in stale
    ]
    lines: list[str] = []
    for entry in entries:
        text = description(entry)
        if not text:
            problems.append(
                f"conf/base/catalog.yml: entry {entry.name!r} has no description (add a comment "
                "on its line in the catalog, or an entry to docs/docgen/catalog.py DESCRIPTIONS)"
            )
        facts = [
            f"Type {_short_type(entry.config.get('type', '?'))}",
            f"data in {_where(entry.config)}",
        ]
        if entry.config.get("versioned"):
            facts.append("versioned (one timestamped folder per run)")
        if entry.config.get("credentials"):
            facts.append(f"credentials `{entry.config['credentials']}`")
        envs = [f"`--env {env}`" for env, names in overridden.items() if entry.name in names]
        if envs:
            facts.append("replaced in " + ", ".join(envs))
        facts.append(f"written by {_node_list(writers.get(entry.name, []))}")
        facts.append(f"read by {_node_list(readers.get(entry.name, []))}")
        block = "\n".join(f"    {line}" if line else "" for line in entry.source.splitlines())
        lines += [
            f"#### `{entry.name}` {{#catalog-{entry.name}}}",
            "",
            one_line(text),
            "",
            "; ".join(facts) + ".",
            "",
            '??? note "In conf/base/catalog.yml"',
            "",
            "    ```yaml",
            block,
            "    ```",
            "",
        ]
    return "\n".join(lines), problems
