"""The pipelines and the catalog: every node and every dataset, read from the project.

Nodes come from the pipelines Kedro builds: each ``pipelines/<name>/pipeline.py`` is imported and
its ``create_pipeline()`` called, and, where it takes ``students``, called again with one student
whose namespace the site writes ``{student}.``, as the catalog's dataset factories do. Each node
is described by the first paragraph of the docstring of the function it runs, found under its
``functools.partial`` and ``functools.wraps`` layers. Catalog entries come from
``conf/base/catalog.yml`` (quoted keys included: the factories); an entry is described by
:data:`DESCRIPTIONS` below or, failing that, by the comment on its key line or just above it.
An entry or a node without a description is a problem: the build fails on it.
"""

import functools
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kedro.pipeline import Pipeline

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
    # Several students (parameters: students): one namespace per student, "{student}.<dataset>".
    # A step that failed saves the student's failure record in place of its outputs: a JSON
    # entry holds it as is, a folder a student_failure.json that loads back as the record.
    "{student}.training_metrics": "One student's `training_metrics` (several students), or its "
    "failure record when its training failed.",
    "{student}.student_model": "One student's trained model, a sentence-transformers folder per "
    "run under `data/06_models/students/<name>/`; when its training failed, the version holds "
    "`student_failure.json` instead, which loads as the failure record.",
    "{student}.student_exports": "One student's exports (as `student_exports`), or "
    "`student_failure.json` when its training or export failed.",
    "{student}.distillation_metrics": "One student's evaluation figures (as "
    "`distillation_metrics`), or its failure record: what `compare_students` reads.",
    "{student}.mteb_results": "One student's raw mteb result files (as `mteb_results`), or "
    "`student_failure.json` when a step before the evaluation failed.",
    "{student}.distillation_report": "One student's Markdown report (as `distillation_report`); "
    "for a failed student: the step, the error and the command to rerun it alone.",
    "{student}.training_curves_plot": "One student's training curves (as "
    "`training_curves_plot`); for a failed student a figure that says where it failed (PNG).",
    "{student}.cosine_histogram_plot": "One student's held-out cosine histogram (as "
    "`cosine_histogram_plot`); for a failed student a figure that says where it failed (PNG).",
    "{student}.quality_speed_plot": "One student's quality against speed (as "
    "`quality_speed_plot`); for a failed student a figure that says where it failed (PNG).",
    "students_comparison": "Every student next to the teacher (`compare_students`): one row per "
    "trained student and export with its figures and Pareto flag, the recommendations, the "
    "failed students and the comparability notes (JSON).",
    "students_comparison_report": "The comparison as Markdown: the two recommendations (most "
    "accurate at 5x the teacher's speed, fastest keeping 95 % of its STS-B) first, then the "
    "table, the failed students and how to rerun them.",
    "students_comparison_plot": "Quality against speed as a multiple of the teacher's (log "
    "scale), a colour per student and a marker per form, the Pareto front and the two "
    "recommendations (PNG).",
}

# A catalog key, plain or quoted (the dataset factories: "{student}.student_model").
KEY_LINE = re.compile(r"""^(?:([A-Za-z_][\w.-]*)|"([^"]+)"|'([^']+)'):(.*)$""")
# The students pipeline is built for one stand-in student, written ``{student}`` on the site.
STAND_IN_NAME = "docgen_student"
STAND_IN = re.compile(rf"(?<!\w){STAND_IN_NAME}(?!\w)")
STUDENT = "{student}"
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
    """One node of a pipeline as Kedro builds it."""

    pipeline: str
    name: str  # namespaced ones as "{student}.train_student_model"
    func: str  # the function under partial/wraps layers: what the node's docstring comes from
    module: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    summary: str
    students: bool = False  # only in the pipeline with `students` (one branch per student)

    @property
    def short_name(self) -> str:
        """The name without the student's namespace (``train_student_model``)."""
        return self.name.removeprefix(f"{STUDENT}.")


def _comment(text: str) -> str:
    """The text of a YAML comment after its ``#``."""
    return text.split("#", 1)[1].strip() if "#" in text else ""


def _key(line: str) -> tuple[str, str]:
    """A key line's entry name (unquoted) and what follows its colon."""
    match = KEY_LINE.match(line)
    assert match is not None, line
    plain, double, single, rest = match.groups()
    return plain or double or single, rest


def anchor(name: str) -> str:
    """The id of an entry's section on the configuration page (``{student}`` loses its braces)."""
    return "catalog-" + name.replace("{", "").replace("}", "")


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
        name, rest = _key(lines[start])
        on_line = _comment(rest)
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


def _function(func: Callable[..., Any]) -> Callable[..., Any]:
    """The function a node runs, under its ``functools.partial`` and ``functools.wraps`` layers."""
    while True:
        if isinstance(func, functools.partial):
            func = func.func
        elif hasattr(func, "__wrapped__"):
            func = func.__wrapped__
        else:
            return func


def _summary(func: Callable[..., Any]) -> str:
    """The first paragraph of a function's docstring, as one line of Markdown."""
    docstring = inspect.getdoc(func)
    return one_line(rst_to_markdown(docstring.split("\n\n")[0])) if docstring else ""


def _generic(name: str) -> str:
    """A name of the students pipeline with the stand-in student written as ``{student}``."""
    return STAND_IN.sub(STUDENT, name)


def _nodes(pipeline: str, built: Pipeline, students: bool) -> list[PipelineNode]:
    """The nodes of a pipeline Kedro built, in the order it runs them."""
    found = []
    for node in built.nodes:
        func = _function(node.func)
        found.append(
            PipelineNode(
                pipeline=pipeline,
                name=_generic(node.name),
                func=func.__name__,
                module=func.__module__,
                inputs=tuple(_generic(n) for n in node.inputs),
                outputs=tuple(_generic(n) for n in node.outputs),
                summary=_summary(func),
                students=students,
            )
        )
    return found


@functools.cache
def _built(src: Path) -> dict[str, list[PipelineNode]]:
    """Every pipeline's nodes, as Kedro builds them (the package is imported)."""
    found: dict[str, list[PipelineNode]] = {}
    for path in sorted((src / PACKAGE / "pipelines").glob("*/pipeline.py")):
        pipeline = path.parent.name
        module = importlib.import_module(f"{PACKAGE}.pipelines.{pipeline}.pipeline")
        nodes = _nodes(pipeline, module.create_pipeline(), students=False)
        if "students" in inspect.signature(module.create_pipeline).parameters:
            single = {node.name for node in nodes}
            several = _nodes(
                pipeline, module.create_pipeline(students=(STAND_IN_NAME,)), students=True
            )
            nodes += [node for node in several if node.name not in single]
        found[pipeline] = nodes
    return {pipeline: found[pipeline] for pipeline in _data_flow_order(found)}


def pipeline_nodes(src: Path = SRC) -> dict[str, list[PipelineNode]]:
    """``{pipeline: nodes}`` of every ``pipelines/*/pipeline.py``, as Kedro builds them.

    Each pipeline's ``create_pipeline()`` in the order Kedro runs its nodes, then, for a
    pipeline whose ``create_pipeline`` takes ``students``, the nodes that one student adds or
    renames (``students=True``), the student's namespace written as ``{student}.`` like the
    dataset factories of the catalog (``"{student}.student_model"``).
    """
    return _built(src)


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
        return f"[`{name}`]({page}#{anchor(name)})"
    return f"`{name}` (in memory)"


def node_function(node: PipelineNode) -> str:
    """An autorefs link to the node's function in the API reference."""
    return f"[`{node.func}`][{node.module}.{node.func}]"


TABLE_HEAD = ["| node | runs | inputs | outputs | what it does |", "|---|---|---|---|---|"]


def _node_rows(nodes: list[PipelineNode], catalog: set[str]) -> list[str]:
    """One table row per node."""
    rows = []
    for node in nodes:
        ins = ", ".join(dataset_link(n, catalog) for n in node.inputs)
        outs = ", ".join(dataset_link(n, catalog) for n in node.outputs)
        summary = node.summary.replace("|", "\\|")
        rows.append(f"| `{node.name}` | {node_function(node)} | {ins} | {outs} | {summary} |")
    return rows


def pipelines_markdown(src: Path = SRC, base: Path = BASE) -> tuple[str, list[str]]:
    """One node table per pipeline (two with ``students``), and the undocumented nodes."""
    catalog = {entry.name for entry in catalog_entries(base / "catalog.yml")}
    lines: list[str] = []
    problems: list[str] = []
    for pipeline, nodes in pipeline_nodes(src).items():
        module = importlib.import_module(f"{PACKAGE}.pipelines.{pipeline}.pipeline")
        text = one_line(rst_to_markdown(inspect.getdoc(module) or ""))
        problems += [
            f"pipeline {pipeline}: node {node.name} runs {node.func}, which has no docstring"
            for node in nodes
            if not node.summary
        ]
        single = [node for node in nodes if not node.students]
        several = [node for node in nodes if node.students]
        lines += [
            f"### `{pipeline}` {{#pipeline-{pipeline}}}",
            "",
            f"{text} Run it alone with `kedro run --pipeline {pipeline}`.",
            "",
            *TABLE_HEAD,
            *_node_rows(single, catalog),
            "",
        ]
        if several:
            shared = [
                node.name for node in single if node.name not in {n.short_name for n in several}
            ]
            lines += [
                f"With `students` ([Several students](#several-students)), the shared "
                f"nodes ({_node_list(shared)}) run once and these replace the others: each "
                f"student's branch in its own namespace (`{STUDENT}` stands for the student's "
                "name), then the comparison of all students.",
                "",
                *TABLE_HEAD,
                *_node_rows(several, catalog),
                "",
            ]
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
        link = f"[`{name}`](configuration.md#{anchor(name)})" if entry else f"`{name}`"
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
            f"#### `{entry.name}` {{#{anchor(entry.name)}}}",
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
