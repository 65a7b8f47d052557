"""mkdocs hooks: the generated parts of the site (see docs/docgen/), filled in at build time.

A page asks for a generated part with a marker line, ``<!-- docgen: NAME -->``; :data:`PARTS`
lists the names. Every problem the generators find (a parameter or catalog entry without a
description, a quoted error message the code no longer has, an unknown marker) is logged as a
warning, so ``mkdocs build --strict`` fails on it and names it.
"""

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docgen import benchmarks, catalog, configuration, exports, messages, project
from docgen.project import PACKAGE, ROOT, SRC
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.docgen")

MARKER = re.compile(r"^<!-- docgen: ([\w-]+) -->$", re.MULTILINE)
SCREENSHOT = "assets/kedro-viz.png"
BENCHMARKS_SECTION = "Benchmarks"


def kedro_viz(page: Page, config: MkDocsConfig) -> tuple[str, list[str]]:
    """The kedro-viz screenshot where docs/assets holds one, else how to see the same view."""
    if (Path(config.docs_dir) / SCREENSHOT).exists():
        link = "../" * page.file.src_uri.count("/") + SCREENSHOT
        alt = "Both pipelines in kedro-viz: their nodes and datasets, by layer"
        return f"![{alt}]({link})\n", []
    return (
        '!!! note "No kedro-viz screenshot in this build"\n'
        f"    `docs/{SCREENSHOT}` is missing; `kedro viz run` shows the same view live.\n",
        [],
    )


def node_modules(page: Page, config: MkDocsConfig) -> tuple[str, list[str]]:
    """An API section (mkdocstrings) for the nodes module of every pipeline."""
    return "\n".join(
        f"::: {PACKAGE}.pipelines.{pipeline}.nodes\n" for pipeline in catalog.pipeline_nodes(SRC)
    ), []


Part = Callable[[Page, MkDocsConfig], tuple[str, list[str]]]
PARTS: dict[str, Part] = {
    "parameters": lambda page, config: configuration.parameters_markdown(),
    "catalog": lambda page, config: catalog.catalog_markdown(),
    "pipelines": lambda page, config: catalog.pipelines_markdown(),
    "datasets": lambda page, config: catalog.datasets_markdown(),
    "benchmark-results": lambda page, config: (benchmarks.results_table(), []),
    "export-formats": lambda page, config: exports.formats_markdown(),
    "kedro-viz": kedro_viz,
    "node-modules": node_modules,
}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Add one page per ``benchmarks/RESULTS*.md`` to the Benchmarks section of the nav."""
    for item in config.nav or []:
        if isinstance(item, dict) and isinstance(item.get(BENCHMARKS_SECTION), list):
            section = item[BENCHMARKS_SECTION]
            known = {uri for entry in section for uri in _uris(entry)}
            for page in benchmarks.results_pages():
                if page.uri not in known:
                    section.append({page.source.name: page.uri})
            return config
    log.warning("mkdocs.yml: the nav has no %r section for the results pages", BENCHMARKS_SECTION)
    return config


def _uris(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [uri for value in entry.values() for uri in _uris(value)]
    if isinstance(entry, list):
        return [uri for value in entry for uri in _uris(value)]
    return []


def on_pre_build(config: MkDocsConfig) -> None:
    """Read src/ afresh on every build (``mkdocs serve`` rebuilds in the same process)."""
    project.package.cache_clear()
    messages.string_literals.cache_clear()


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the pages made from ``benchmarks/*.md``."""
    for page in [*benchmarks.document_pages(), *benchmarks.results_pages()]:
        files.append(File.generated(config, page.uri, content=page.markdown()))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill in the markers of ``page`` and check the error messages it quotes."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PARTS:
            log.warning("%s: unknown marker %r (known: %s)", page.file.src_uri, name, sorted(PARTS))
            return ""
        text, problems = PARTS[name](page, config)
        for problem in problems:
            log.warning("%s", problem)
        return text

    markdown = MARKER.sub(fill, markdown)
    for message in messages.missing_messages(markdown):
        log.warning(
            "%s quotes an error message that no string in src/ holds any more: %r",
            page.file.src_uri,
            message,
        )
    return markdown


def on_serve(server: Any, config: MkDocsConfig, builder: Any) -> Any:
    """With ``mkdocs serve``, rebuild when the files the generated parts come from change."""
    for folder in ("conf", "src", "benchmarks"):
        server.watch(str(ROOT / folder))
    return server
