"""The configuration page: every key of ``conf/base`` with its default, allowed values and meaning.

A parameter group (``compute:``, ``distillation:``, ...) is documented by the frozen dataclass
that validates it: the meaning of a key is the ``Attributes:`` entry of that class's docstring,
the allowed values come from the field's type hint (``Literal[...]`` choices, ``int``, ``None``,
...), and the default is the value in ``conf/base`` (with the Python default beside it where
the two differ). Keys that no dataclass reads, the ``${runtime_params:...}`` of the catalog and
the credentials are described in this module. A key that has no description anywhere is a
problem: the build fails on it.
"""

import ast
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import griffe
import yaml

from docgen.project import BASE, CONF, member, one_line
from docgen.rst import rst_to_markdown

# Parameter group -> the dataclass (relative to the package) that validates it.
GROUPS = {
    "compute": "compute.ComputeConfig",
    "teacher_embeddings": "encoding.config.EncodingConfig",
    "distillation": "training.config.EmbeddingTrainerConfig",
    "evaluation": "evaluation.config.EvaluationConfig",
    "export": "export.config.ExportConfig",
}


@dataclass(frozen=True)
class Described:
    """A key that no config class documents: its allowed values and meaning."""

    allowed: str
    meaning: str


# Top-level parameter keys outside the groups (read by a Kedro hook or the pipeline registry,
# not by one config class); a mapping among them is shown whole, as one key.
TOP_LEVEL = {
    "students": Described(
        "`null`, or a mapping of student names (Python identifiers) to mappings of "
        "`distillation` keys",
        "Several students from the same teacher embeddings, compared in one report "
        "(`compare_students`): each entry overrides keys of `distillation` (`{}` trains it as "
        "it is) and runs in its own Kedro namespace (`kedro run --namespaces NAME`). `null` or "
        "no entry: the single-student pipeline. An environment adds students and removes one "
        "with `NAME: null`; `students: null` empties it ([Several students]"
        "(pipelines.md#several-students)).",
    ),
    "dry_run": Described(
        "`true` or `false`",
        "Check the parameters, the corpus and the models and log the plan (rows, shards, disk "
        "size, training steps per process, pushes) instead of running the nodes: nothing is "
        "encoded, trained or written (`embedding_distillation.dry_run`, "
        "`embedding_distillation.plan`).",
    ),
}

# ``${runtime_params:NAME, default}`` in the catalog: set with ``kedro run --params NAME=...``.
RUNTIME_PARAMS = {
    "corpus_streaming": Described(
        "`true` or `false`",
        "Sets `corpus.streaming`: read the corpus with `datasets` streaming while encoding "
        "(nothing is downloaded or converted first; counts are known only at the end of the "
        "stream).",
    ),
}

# Keys of conf/base/credentials.yml (values never appear in logs, errors or the site).
CREDENTIALS = {
    "huggingface.token": Described(
        "a Hub token, or `null`",
        "The token of every catalog entry that talks to the Hub: `corpus` (a private Hub "
        "dataset), `hub_credentials` (the pushes of `encode_corpus` while it encodes and the "
        "checkpoint pushes of `train_student_model`), `teacher_embeddings_hub` (the final "
        "embedding push) and `student_model_hub`; conf/base reads it from the `HF_TOKEN` "
        "environment variable. Put your own in `conf/local/credentials.yml` (git-ignored); a "
        "token is never a parameter.",
    ),
}

SIMPLE_TYPES = {"int": "integer", "float": "number", "str": "text", "bool": "`true` or `false`"}
PLURALS = {"integer": "integers", "number": "numbers", "text": "strings"}


@dataclass(frozen=True)
class Key:
    """One documented key of a parameter group."""

    name: str
    value: Any  # in conf/base (MISSING when only another environment sets it)
    allowed: str
    meaning: str
    python_default: str | None = None  # the dataclass default where it differs from conf/base
    overrides: dict[str, Any] = field(default_factory=dict)  # environment -> value


@dataclass(frozen=True)
class Group:
    """A parameter group as the page shows it."""

    name: str
    file: str
    config_class: str  # dotted path in the package
    summary: str
    from_params: str
    keys: list[Key]
    unset_fields: list[str]  # fields of the class that conf/base does not set


MISSING = object()


def yaml_text(value: Any) -> str:
    """``value`` as it would be written in a parameters file (flow style, one line)."""

    def plain(item: Any) -> Any:
        if isinstance(item, list | tuple):
            return [plain(v) for v in item]
        if isinstance(item, dict):
            return {k: plain(v) for k, v in item.items()}
        return item

    text = yaml.safe_dump(plain(value), default_flow_style=True, width=10**6, sort_keys=False)
    return text.strip().removesuffix("...").strip()


def code(value: Any) -> str:
    """``value`` in a Markdown code span."""
    return f"`{yaml_text(value)}`"


def parameter_files(folder: Path) -> list[Path]:
    """``parameters.yml`` first, then ``parameters_*.yml`` in name order."""
    return sorted(folder.glob("parameters*.yml"), key=lambda p: (p.stem != "parameters", p.name))


def load_yaml(path: Path) -> dict[str, Any]:
    """The mapping in a YAML file (``{}`` for an empty one)."""
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def environments(conf: Path = CONF) -> list[Path]:
    """The configuration environments other than ``base`` and ``local`` (``gpu``, ``large``)."""
    return sorted(p for p in conf.iterdir() if p.is_dir() and p.name not in ("base", "local"))


def env_parameters(conf: Path = CONF) -> dict[str, dict[str, Any]]:
    """``{environment: merged parameters}`` of every other environment."""
    merged: dict[str, dict[str, Any]] = {}
    for env in environments(conf):
        params: dict[str, Any] = {}
        for path in parameter_files(env):
            params.update(load_yaml(path))
        merged[env.name] = params
    return merged


def alternatives(words: list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b or c"``."""
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def module_value(name: str, module: griffe.Module) -> str | None:
    """The source of the module-level value ``name`` (following imports), or None."""
    found = module.members.get(name)
    try:
        value = found.value if found is not None else None
    except griffe.AliasResolutionError:
        return None
    return None if value is None else str(value)


def describe_type(expr: ast.expr, module: griffe.Module) -> list[str]:
    """The values a type hint allows, as Markdown alternatives."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.BitOr):
        return describe_type(expr.left, module) + describe_type(expr.right, module)
    if isinstance(expr, ast.Constant) and expr.value is None:
        return ["`null`"]
    if isinstance(expr, ast.Name):
        if expr.id in SIMPLE_TYPES:
            return [SIMPLE_TYPES[expr.id]]
        alias = module_value(expr.id, module)  # Device = Literal["auto", ...]
        if alias is not None:
            return describe_type(ast.parse(alias, mode="eval").body, module)
    if isinstance(expr, ast.Subscript):
        described = describe_generic(expr, module)
        if described is not None:
            return described
    return [f"`{ast.unparse(expr)}`"]


def describe_generic(expr: ast.Subscript, module: griffe.Module) -> list[str] | None:
    """``Literal[...]``, ``tuple[X, ...]``/``list[X]`` or ``dict[K, V]`` in words (else None)."""
    head = ast.unparse(expr.value)
    args = list(expr.slice.elts) if isinstance(expr.slice, ast.Tuple) else [expr.slice]
    if head.endswith("Literal"):
        return [code(ast.literal_eval(arg)) for arg in args]
    if head in ("tuple", "list", "Sequence"):
        items = [PLURALS.get(word, word) for word in describe_type(args[0], module)]
        return ["a list of " + alternatives(items)]
    if head in ("dict", "Mapping"):
        keys, values = (alternatives(describe_type(a, module)) for a in args[:2])
        return [f"a mapping of {keys} to {values}"]
    return None


def allowed_values(annotation: str, module: griffe.Module) -> str:
    """The allowed values of a field with type hint ``annotation``."""
    return alternatives(describe_type(ast.parse(annotation, mode="eval").body, module))


def python_default(attribute: griffe.Attribute, module: griffe.Module) -> tuple[bool, Any, str]:
    """``(has a default, its value or MISSING if not a literal, its source)`` of a field."""
    if attribute.value is None:
        return False, MISSING, ""
    expr = ast.parse(str(attribute.value), mode="eval").body
    if isinstance(expr, ast.Call) and ast.unparse(expr.func) == "field":
        keywords = {k.arg: k.value for k in expr.keywords}
        if "default" not in keywords:
            return True, MISSING, ast.unparse(expr)
        expr = keywords["default"]
    if isinstance(expr, ast.Name) and (value := module_value(expr.id, module)) is not None:
        expr = ast.parse(value, mode="eval").body  # FINAL_COLUMN -> 'teacher_embedding_final'
    source = ast.unparse(expr)
    try:
        return True, ast.literal_eval(expr), source
    except ValueError:
        return True, MISSING, source


def default_note(attribute: griffe.Attribute, module: griffe.Module, value: Any) -> str | None:
    """``"required"``, the Python default where it differs from ``value``, or None."""
    has_default, default, source = python_default(attribute, module)
    if not has_default:
        return "required"
    if value is MISSING or (default is not MISSING and same(default, value)):
        return None
    return source if default is MISSING else yaml_text(default)


def same(python: Any, configured: Any) -> bool:
    """Whether a Python default and a YAML value are the same setting."""

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    return plain(python) == plain(configured)


def dataclass_fields(cls: griffe.Class) -> dict[str, griffe.Attribute]:
    """The fields of a dataclass, in source order."""
    fields: dict[str, griffe.Attribute] = {}
    for name, found in cls.members.items():
        if isinstance(found, griffe.Attribute) and "instance-attribute" in found.labels:
            fields[name] = found
    return fields


def attribute_docs(cls: griffe.Class) -> dict[str, str]:
    """``{field: description}`` from the ``Attributes:`` section of the class docstring."""
    docs: dict[str, str] = {}
    for section in cls.docstring.parsed if cls.docstring else []:
        if section.kind is griffe.DocstringSectionKind.attributes:
            for item in section.value:
                docs[item.name] = one_line(rst_to_markdown(item.description))
    return docs


def summary(obj: griffe.Object | griffe.Alias | None) -> str:
    """The docstring of ``obj`` without its sections, on one line."""
    if obj is None or not obj.docstring:
        return ""
    text = obj.docstring.parsed[0].value if obj.docstring.parsed else ""
    return one_line(rst_to_markdown(str(text))) if isinstance(text, str) else ""


def group_of(
    name: str, values: dict[str, Any], file: str, overrides: dict[str, dict[str, Any]]
) -> tuple[Group | None, list[str]]:
    """Document one parameter group; also return what is undocumented."""
    if name not in GROUPS:
        return None, [
            f"{file}: parameter group {name!r} has no config class in docs/docgen/"
            f"configuration.py GROUPS (known: {sorted(GROUPS)})"
        ]
    cls = member(GROUPS[name])
    assert isinstance(cls, griffe.Class), GROUPS[name]
    module = cls.module
    fields = dataclass_fields(cls)
    docs = attribute_docs(cls)
    problems: list[str] = []
    names = list(values) + [
        key for env in overrides.values() for key in env.get(name, {}) if key not in values
    ]
    keys = []
    for key in dict.fromkeys(names):
        where = f"{file}: {name}.{key}"
        if key not in fields:
            problems.append(f"{where} is not a field of {cls.name}: the run rejects it")
            continue
        if not docs.get(key):
            problems.append(f"{where} has no description in the Attributes of {cls.name}")
        value = values.get(key, MISSING)
        keys.append(
            Key(
                name=key,
                value=value,
                allowed=allowed_values(str(fields[key].annotation), module),
                meaning=docs.get(key, ""),
                python_default=default_note(fields[key], module, value),
                overrides={
                    env: params[name][key]
                    for env, params in overrides.items()
                    if key in params.get(name, {})
                },
            )
        )
    method = cls.members.get("from_params")
    return Group(
        name=name,
        file=file,
        config_class=cls.path,
        summary=summary(cls),
        from_params=summary(method) if method is not None else "",
        keys=keys,
        unset_fields=[f for f in fields if f not in values],
    ), problems


def parameter_groups(
    base: Path = BASE, conf: Path = CONF
) -> tuple[list[Group], list[Key], list[str]]:
    """Every parameter group and top-level key of ``base``, and the undocumented ones."""
    overrides = env_parameters(conf)
    groups: list[Group] = []
    top_level: list[Key] = []
    problems: list[str] = []
    for path in parameter_files(base):
        file = f"conf/base/{path.name}"
        for name, values in load_yaml(path).items():
            if isinstance(values, dict) and name not in TOP_LEVEL:
                group, missing = group_of(name, values, file, overrides)
                problems += missing
                if group is not None:
                    groups.append(group)
            elif name in TOP_LEVEL:
                top_level.append(
                    Key(
                        name=name,
                        value=values,
                        allowed=TOP_LEVEL[name].allowed,
                        meaning=TOP_LEVEL[name].meaning,
                        overrides={e: p[name] for e, p in overrides.items() if name in p},
                    )
                )
            else:
                problems.append(
                    f"{file}: top-level key {name!r} has no description in docs/docgen/"
                    "configuration.py TOP_LEVEL"
                )
    return groups, top_level, problems


RUNTIME_PARAM = re.compile(r"\$\{runtime_params:\s*([A-Za-z_][\w.]*)\s*(?:,\s*([^}]*))?\}")


def runtime_params(conf: Path = CONF) -> tuple[list[Key], list[str]]:
    """The ``${runtime_params:...}`` of the catalogs, with their defaults."""
    found: dict[str, Any] = {}
    for path in sorted(conf.glob("*/catalog*.yml")):
        for match in RUNTIME_PARAM.finditer(path.read_text(encoding="utf-8")):
            default = yaml.safe_load(match.group(2)) if match.group(2) else None
            found.setdefault(match.group(1), default)
    keys, problems = [], []
    for name, default in found.items():
        if name not in RUNTIME_PARAMS:
            problems.append(
                f"catalog: ${{runtime_params:{name}}} has no description in docs/docgen/"
                "configuration.py RUNTIME_PARAMS"
            )
            continue
        keys.append(Key(name, default, RUNTIME_PARAMS[name].allowed, RUNTIME_PARAMS[name].meaning))
    return keys, problems


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def credentials(base: Path = BASE) -> tuple[list[Key], list[str]]:
    """The keys of ``conf/base/credentials.yml`` (their values are not shown)."""
    path = base / "credentials.yml"
    flat = flatten(load_yaml(path)) if path.exists() else {}
    keys, problems = [], []
    for name, value in flat.items():
        if name not in CREDENTIALS:
            problems.append(
                f"conf/base/credentials.yml: {name} has no description in docs/docgen/"
                "configuration.py CREDENTIALS"
            )
            continue
        keys.append(Key(name, value, CREDENTIALS[name].allowed, CREDENTIALS[name].meaning))
    return keys, problems


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return one_line(text).replace("|", "\\|")


def key_rows(keys: Iterable[Key], prefix: str = "") -> list[str]:
    """Table rows: key, conf/base value, allowed values, meaning (with the other defaults)."""
    rows = []
    for key in keys:
        notes = []
        if key.python_default == "required":
            notes.append("Required in Python.")
        elif key.python_default is not None:
            notes.append(f"Python default: `{key.python_default}`.")
        notes += [f"`--env {env}`: {code(value)}." for env, value in key.overrides.items()]
        value = "not set" if key.value is MISSING else code(key.value)
        meaning = " ".join([key.meaning, *notes]).strip()
        rows.append(
            f"| `{prefix}{key.name}` | {cell(value)} | {cell(key.allowed)} | {cell(meaning)} |"
        )
    return rows


TABLE_HEAD = ["| key | in conf/base | allowed | meaning |", "|---|---|---|---|"]


def parameters_markdown(base: Path = BASE, conf: Path = CONF) -> tuple[str, list[str]]:
    """The parameter sections of the configuration page, and what is undocumented."""
    groups, top_level, problems = parameter_groups(base, conf)
    runtime, runtime_problems = runtime_params(conf)
    secrets, secret_problems = credentials(base)
    lines: list[str] = []
    for group in groups:
        short = group.config_class.rsplit(".", 1)[-1]
        lines += [
            f"### `{group.name}` {{#params-{group.name}}}",
            "",
            f"In `{group.file}`; validated by [`{short}`][{group.config_class}] before any "
            f"model loads. {group.summary} {group.from_params} On the command line: "
            f"`--params {group.name}.KEY=VALUE`.".strip(),
            "",
            *TABLE_HEAD,
            *key_rows(group.keys),
            "",
        ]
        if group.unset_fields:
            names = ", ".join(f"`{name}`" for name in group.unset_fields)
            lines += [
                f"Also accepted, not set in conf/base: {names} (see [`{short}`]"
                f"[{group.config_class}]).",
                "",
            ]
    if top_level:
        lines += ["### Other parameters {#params-other}", "", *TABLE_HEAD, *key_rows(top_level)]
        lines.append("")
    if runtime:
        lines += [
            "### Runtime parameters of the catalog {#params-runtime}",
            "",
            "Set only on the command line (`kedro run --params NAME=VALUE`); the catalog reads "
            "them as `${runtime_params:NAME, default}`.",
            "",
            "| key | default | allowed | meaning |",
            "|---|---|---|---|",
            *key_rows(runtime),
            "",
        ]
    if secrets:
        lines += [
            "### Credentials {#params-credentials}",
            "",
            "From `conf/base/credentials.yml`, overridden by `conf/local/credentials.yml`.",
            "",
            *TABLE_HEAD,
            *key_rows(secrets),
            "",
        ]
    return "\n".join(lines), problems + runtime_problems + secret_problems
