"""The documentation site: it builds offline in strict mode, and its generated parts stay true.

The generators live in ``docs/docgen/`` (called by the mkdocs hooks in ``docs/hooks.py``); these
tests call them directly as well, on the project's own files and on altered copies.
"""

import ast
import importlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import yaml

from tests.conftest import ROOT, base_parameters

DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 150
BUILD_TIMEOUT_S = 300
DOCS_PACKAGES = ("mkdocs", "material", "mkdocstrings", "griffe")

_missing = [name for name in DOCS_PACKAGES if importlib.util.find_spec(name) is None]
if _missing:
    pytest.fail(
        f"The docs tests need {_missing}, which are not installed: pip install -e '.[dev]'",
        pytrace=False,
    )


def _docgen(name: str) -> ModuleType:
    """``docs/docgen/<name>.py`` (docs/ is not a package of the project)."""
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    return importlib.import_module(f"docgen.{name}" if name != "hooks" else "hooks")


configuration = _docgen("configuration")
catalog = _docgen("catalog")
messages = _docgen("messages")
benchmarks = _docgen("benchmarks")


def _build(config: Path, site: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=cwd,
        env={**_offline_env(), "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )


def _offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "KEDRO_DISABLE_TELEMETRY": "1"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``mkdocs build --strict`` into a temporary folder."""
    folder = tmp_path_factory.mktemp("site")
    started = time.monotonic()
    result = _build(ROOT / "mkdocs.yml", folder)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    print(f"mkdocs build --strict: {seconds:.1f} s")
    return folder


def _page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def _section(html: str, anchor: str) -> str:
    """The HTML from the heading with id ``anchor`` to the next heading of that level or above."""
    start = html.index(f'id="{anchor}"')
    level = html.rfind("<h", 0, start)
    depth = int(html[level + 2])
    following = re.search(rf"<h[1-{depth}][ >]", html[start:])
    return html[start : start + following.start()] if following else html[start:]


# -- the build ------------------------------------------------------------------------------------


def test_the_site_has_every_page_and_no_external_fonts(site):
    for page in (
        "getting-started",
        "concepts",
        "pipelines",
        "configuration",
        "hub",
        "gpus",
        "export",
        "evaluation",
        "troubleshooting",
        "benchmarks",
        "api",
        "api/configs",
        "api/export",
        "api/nodes",
    ):
        assert (site / page / "index.html").is_file(), page
    index = (site / "index.html").read_text()
    assert "fonts.googleapis.com" not in index  # theme.font: false, nothing to fetch offline


def test_the_configuration_page_shows_every_key_of_conf_base(site):
    html = _page(site, "configuration")
    for group, values in base_parameters().items():
        if isinstance(values, dict) and group not in configuration.TOP_LEVEL:
            section = _section(html, f"params-{group}")
            for key in values:
                assert f"<code>{key}</code>" in section, f"{group}.{key}"
        else:
            assert f"<code>{group}</code>" in _section(html, "params-other"), group
    entries = yaml.safe_load((ROOT / "conf" / "base" / "catalog.yml").read_text())
    for name in entries:
        assert f'id="{catalog.anchor(name)}"' in html, name
    assert "<code>huggingface.token</code>" in _section(html, "params-credentials")


def test_the_api_reference_documents_the_seed_classes(site):
    html = _page(site, "api")
    for name in ("TeacherEmbeddingsGenerator", "EmbeddingDistillationTrainer"):
        assert f'id="embedding_distillation.api.{name}"' in html, name
    assert 'id="embedding_distillation.training.config.EmbeddingTrainerConfig"' in html
    # A docstring sentence made it through mkdocstrings.
    assert "Precompute and store teacher embeddings" in html
    # Sphinx roles of the docstrings are rewritten as code (docs/docgen/rst.py).
    for page in (site / "api").rglob("index.html"):
        assert not re.search(r":(func|class|meth|mod|data|attr):`", page.read_text()), page


def test_sphinx_roles_become_code_spans():
    rst = _docgen("rst")
    text = (
        "Uses :func:`~embedding_distillation.export.load_encoder` and :class:`EncodingPlan`, "
        "see :meth:`.mteb_tasks.resolve_tasks`. Example::\n\n    code\n"
    )
    assert rst.roles_to_code(text) == (
        "Uses ``load_encoder`` and ``EncodingPlan``, see ``mteb_tasks.resolve_tasks``. "
        "Example:\n\n    code\n"
    )
    assert rst.rst_to_markdown("``a`` and :data:`~x.FORMATS`") == "`a` and `FORMATS`"


def test_every_results_file_has_its_page(site):
    pages = benchmarks.results_pages()
    assert {page.source.name for page in pages} == {
        p.name for p in (ROOT / "benchmarks").glob("RESULTS*.md")
    }
    for page in pages:
        built = site / page.uri.removesuffix(".md") / "index.html"
        assert built.is_file(), page.uri
        first_heading = page.title()
        assert first_heading in built.read_text(), page.uri


def test_broken_links_and_anchors_fail_the_build(tmp_path):
    """The validation settings of mkdocs.yml turn a missing page or anchor into a failure."""
    ours = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(
        "# Home\n\n[gone](missing.md) and [no anchor](other.md#nowhere)\n"
    )
    (tmp_path / "docs" / "other.md").write_text("# Other\n")
    config = {"site_name": "t", "strict": True, "validation": ours["validation"]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site", cwd=tmp_path)
    assert result.returncode != 0
    assert "missing.md" in result.stderr
    assert "nowhere" in result.stderr


# -- the configuration page -----------------------------------------------------------------------


def test_every_key_of_conf_base_is_documented():
    markdown, problems = configuration.parameters_markdown()
    assert problems == []
    for group, values in base_parameters().items():
        keys = (
            [group] if group in configuration.TOP_LEVEL or not isinstance(values, dict) else values
        )
        for key in keys:
            assert re.search(rf"^\| `{re.escape(key)}` \|", markdown, re.MULTILINE), key


def _conf_copy(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf, ignore=shutil.ignore_patterns("local"))
    return conf


def _add(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_a_key_without_a_description_is_reported(tmp_path):
    conf = _conf_copy(tmp_path)
    parameters = conf / "base" / "parameters.yml"
    _add(parameters, "mystery_switch: true\nnew_group:\n  size: 3\n")
    # turbo is not a field of ComputeConfig
    parameters.write_text(
        parameters.read_text().replace("compute:\n", "compute:\n  turbo: true\n", 1)
    )
    _, problems = configuration.parameters_markdown(conf / "base", conf)
    joined = "\n".join(problems)
    assert "top-level key 'mystery_switch' has no description" in joined
    assert "parameter group 'new_group' has no config class" in joined
    assert "compute.turbo is not a field of ComputeConfig" in joined
    assert len(problems) == 3


def test_a_field_whose_docstring_lacks_it_is_reported(monkeypatch):
    documented = configuration.attribute_docs

    def without_batch_size(cls):
        return {k: v for k, v in documented(cls).items() if k != "batch_size"}

    monkeypatch.setattr(configuration, "attribute_docs", without_batch_size)
    _, problems = configuration.parameters_markdown()
    assert any("compute.batch_size has no description" in p for p in problems), problems


def test_a_catalog_runtime_param_without_a_description_is_reported(tmp_path):
    conf = _conf_copy(tmp_path)
    _add(
        conf / "base" / "catalog.yml",
        "\nextra_corpus:   # another corpus\n  type: pickle.PickleDataset\n"
        "  filepath: ${runtime_params:extra_path, data/x.pkl}\n",
    )
    keys, problems = configuration.runtime_params(conf)
    assert [key.name for key in keys] == ["corpus_streaming"]
    assert problems == [
        "catalog: ${runtime_params:extra_path} has no description in docs/docgen/"
        "configuration.py RUNTIME_PARAMS"
    ]


def test_the_students_key_is_one_documented_top_level_key(tmp_path):
    """``students`` maps names to overrides: one key of its own, not a group of keys."""
    conf = _conf_copy(tmp_path)
    _add(
        conf / "base" / "parameters_distillation.yml",
        "\nstudents:\n  minilm: {}\n  static: {student_type: static}\n",
    )
    markdown, problems = configuration.parameters_markdown(conf / "base", conf)
    assert problems == []
    row = re.search(r"^\| `students` \| (.*)$", markdown, re.MULTILINE)
    assert row, markdown
    assert "minilm" in row.group(1)
    assert "static" in row.group(1)


def test_other_environments_and_python_defaults_are_shown():
    groups, _, _ = configuration.parameter_groups()
    keys = {(g.name, k.name): k for g in groups for k in g.keys}
    gpu = yaml.safe_load((ROOT / "conf" / "gpu" / "parameters.yml").read_text())
    for group, values in gpu.items():
        for key, value in values.items():
            assert keys[group, key].overrides["gpu"] == value, f"{group}.{key}"
    # conf/base trains the demo with its own loss; the seed's default is shown beside it.
    loss_type = keys["distillation", "loss_type"]
    assert loss_type.value == "similarity"
    assert loss_type.python_default == "mse"
    assert keys["distillation", "learning_rate"].python_default is None  # 2e-5 in both places
    assert keys["distillation", "student_model"].python_default == "required"
    assert keys["compute", "device"].python_default is None  # same default in both places


@pytest.mark.parametrize(
    ("annotation", "allowed"),
    [
        ("Literal['final', 'pre_dense']", "`final` or `pre_dense`"),
        ("Device", "`auto`, `cuda`, `mps` or `cpu`"),  # a module-level alias of compute.py
        ("int | None", "integer or `null`"),
        ("tuple[int, ...] | None", "a list of integers or `null`"),
        ("dict[int, int] | None", "a mapping of integer to integer or `null`"),
        ("str | bool | None", "text, `true` or `false` or `null`"),
    ],
)
def test_allowed_values_come_from_the_type_hint(annotation, allowed):
    module = _docgen("project").member("compute")
    assert configuration.allowed_values(annotation, module) == allowed


# -- the catalog and the pipelines ----------------------------------------------------------------


def test_every_catalog_entry_and_node_is_described():
    _, catalog_problems = catalog.catalog_markdown()
    _, node_problems = catalog.pipelines_markdown()
    assert catalog_problems == []
    assert node_problems == []


def test_an_entry_without_a_description_is_reported(tmp_path):
    conf = _conf_copy(tmp_path)
    _add(
        conf / "base" / "catalog.yml",
        "\n# A comment block above an entry describes it.\nnoted:\n  type: pickle.PickleDataset\n"
        "  filepath: data/noted.pkl\n\nbare:\n  type: pickle.PickleDataset\n"
        "  filepath: data/bare.pkl\n",
    )
    entries = {e.name: e for e in catalog.catalog_entries(conf / "base" / "catalog.yml")}
    assert catalog.description(entries["noted"]) == "A comment block above an entry describes it."
    assert (
        entries["bare"].source == "bare:\n  type: pickle.PickleDataset\n  filepath: data/bare.pkl"
    )
    _, problems = catalog.catalog_markdown(conf=conf)
    assert problems == [
        "conf/base/catalog.yml: entry 'bare' has no description (add a comment on its line in the "
        "catalog, or an entry to docs/docgen/catalog.py DESCRIPTIONS)"
    ]


def test_quoted_factory_keys_are_entries_of_their_own(tmp_path):
    """``"{student}.x":`` starts an entry: it is not read as lines of the entry above it."""
    path = tmp_path / "catalog.yml"
    path.write_text(
        "plain:   # a plain entry\n  type: pickle.PickleDataset\n  filepath: data/p.pkl\n\n"
        '"{student}.x":   # one per student\n  type: pickle.PickleDataset\n'
        "  filepath: data/{student}/x.pkl\n\n'{student}.y':\n  type: pickle.PickleDataset\n"
    )
    entries = {e.name: e for e in catalog.catalog_entries(path)}
    assert list(entries) == ["plain", "{student}.x", "{student}.y"]
    assert entries["plain"].source.endswith("filepath: data/p.pkl")
    assert entries["{student}.x"].comment == "one per student"
    assert entries["{student}.x"].config["filepath"] == "data/{student}/x.pkl"
    assert catalog.anchor("{student}.x") == "catalog-student.x"


def test_the_getting_started_walkthrough_names_every_node():
    """The demo explained step by step: a node added to a pipeline needs its step there."""
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    names = {node.short_name for nodes in catalog.pipeline_nodes().values() for node in nodes}
    assert {"resolve_student", "compare_students"} <= names  # the students pipeline's own
    for name in names:
        assert f"**`{name}`**" in page, name


def _as_documented(name: str, students: tuple[str, ...]) -> str:
    """A name of a pipeline built for ``students`` as the site writes it (``{student}.x``)."""
    return re.sub(rf"(?<!\w)({'|'.join(students)})(?!\w)", "{student}", name)


def test_the_single_and_the_students_pipelines_are_both_documented():
    """Every node of ``create_pipeline()`` and of ``create_pipeline(students=...)`` has its row."""
    from embedding_distillation.pipelines.distillation import pipeline as distillation

    markdown, problems = catalog.pipelines_markdown()
    assert problems == []
    rows = {
        row.split(" | ")[0].removeprefix("| `").removesuffix("`"): row
        for row in markdown.splitlines()
        if row.startswith("| `")
    }
    students = ("minilm", "static")
    built = [*distillation.create_pipeline().nodes]
    built += distillation.create_pipeline(students=students).nodes
    assert any(node.namespace == "static" for node in built)
    for node in built:
        name = _as_documented(node.name, students)
        assert name in rows, name
        for dataset in [*node.inputs, *node.outputs]:
            assert f"`{_as_documented(dataset, students)}`" in rows[name], (name, dataset)
    # The function under partial() and the failure guard: the one whose docstring is shown.
    assert "[`train_student_model`][" in rows["{student}.train_student_model"]
    assert "[`resolve_student`][" in rows["{student}.resolve_student"]
    assert (
        "(configuration.md#catalog-student.student_model)" in rows["{student}.train_student_model"]
    )
    assert next(iter(catalog.pipeline_nodes())) == "teacher_embeddings"  # data-flow order


def test_the_factory_entries_name_the_nodes_that_use_them():
    markdown, _ = catalog.datasets_markdown()
    row = next(r for r in markdown.splitlines() if r.startswith("| [`{student}.student_model`]"))
    assert "`{student}.train_student_model`" in row  # written by
    assert "`{student}.evaluate_student`" in row  # read by
    comparison = next(r for r in markdown.splitlines() if r.startswith("| [`students_comparison`]"))
    assert "`compare_students`" in comparison


# -- the troubleshooting page ---------------------------------------------------------------------


def test_every_message_quoted_on_the_troubleshooting_page_is_in_the_code():
    page = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    quoted = messages.quoted_messages(page)
    assert len(quoted) >= 40
    assert messages.missing_messages(page) == []


def test_a_message_the_code_no_longer_has_is_reported():
    page = (
        "> `compute.device is 'cuda' but torch sees no CUDA device (torch …).`\n\n"
        "> `compute.device is 'cuda' but the GPU ran away (torch …).`\n\n"
        "> ``Split … not found in …; available splits: …. Set `split` to one of them.``\n"
    )
    assert len(messages.quoted_messages(page)) == 3
    assert messages.missing_messages(page) == [
        "compute.device is 'cuda' but the GPU ran away (torch …)."
    ]


def test_quoted_pieces_must_appear_in_order_within_one_literal():
    assert messages.holds("Unknown key(s) {…} in the {…} parameters.", ["Unknown key", "in the"])
    assert not messages.holds("Unknown key(s) {…} in the {…} parameters.", ["in the", "Unknown"])
    page = "> `Unknown key(s) … in the … parameters. Valid keys: ….`\n"
    assert messages.missing_messages(page) == []
    # Two real messages glued together are not one message.
    glued = "> `Run in float16. … Run in bfloat16`\n"
    assert messages.missing_messages(glued) == ["Run in float16. … Run in bfloat16"]


def test_the_hook_turns_problems_into_warnings_that_fail_a_strict_build(caplog):
    hooks = _docgen("hooks")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="troubleshooting.md"))
    markdown = "<!-- docgen: no-such-part -->\n\n> `A message nobody ever wrote.`\n"
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        hooks.on_page_markdown(markdown, page=page, config=None, files=None)
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("mkdocs.")]
    assert any("unknown marker 'no-such-part'" in w for w in warnings), warnings
    assert any("A message nobody ever wrote." in w for w in warnings), warnings


# -- the README: a landing page that points into the docs ------------------------------------------


def _code_blocks(markdown: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)


def test_the_readme_is_a_short_landing_page_whose_links_resolve():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        assert (ROOT / link).exists(), link
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = {uri for entry in nav for uri in _nav_uris(entry)}
    for link in local:
        if link.startswith("docs/") and link.endswith(".md"):
            assert link.removeprefix("docs/") in pages, f"{link} is not in the mkdocs.yml nav"


def _nav_uris(entry: object) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [uri for value in entry.values() for uri in _nav_uris(value)]
    if isinstance(entry, list):
        return [uri for value in entry for uri in _nav_uris(value)]
    return []


def test_ci_runs_the_readme_test_command_and_the_demo_command_comes_first():
    blocks = _code_blocks(README.read_text(encoding="utf-8"), "bash")
    demo, tests = (block.strip() for block in blocks[:2])
    assert demo.endswith("python -m embedding_distillation.demo && kedro run")
    assert tests.endswith("python -m pytest -n 2")
    ci_commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_commands == [tests]


@pytest.mark.parametrize(
    "page", [README, *sorted(DOCS.rglob("*.md"))], ids=lambda p: str(p.relative_to(ROOT))
)
def test_python_examples_are_valid_python(page):
    """Every python block of the README and the docs parses (IPython magics aside)."""
    for block in _code_blocks(page.read_text(encoding="utf-8"), "python"):
        code = "\n".join(line for line in block.splitlines() if not line.startswith("%"))
        ast.parse(code)


def test_the_readme_torch_free_example_names_real_export_formats():
    from embedding_distillation.export import FORMATS

    text = README.read_text(encoding="utf-8")
    example = next(b for b in _code_blocks(text, "python") if "load_encoder" in b)
    called = re.findall(r"load_encoder\([^,]+, \"(\w+)\"", example)
    alternatives = re.findall(r"# or ([\w, ]+)", example)
    names = called + [n.strip() for a in alternatives for n in a.split(",")]
    assert called
    assert set(names) <= set(FORMATS), set(names) - set(FORMATS)
