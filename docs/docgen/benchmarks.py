"""The benchmark pages: ``benchmarks/*.md`` as they are, one page each, and a table of them.

The scripts in ``benchmarks/`` overwrite their ``RESULTS*.md`` on every run; the site shows
those files unchanged (with a line naming the file), so its figures are always the latest
measured ones.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from docgen.project import BENCHMARKS

# Hand-written benchmark documents and the page each becomes.
DOCUMENTS = {"README.md": "benchmarks/methods.md", "gpu/README.md": "benchmarks/gpu.md"}
FIELD = re.compile(r"^- (command|date): (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class BenchmarkPage:
    """A page made from one Markdown file of ``benchmarks/``."""

    source: Path
    relative: str  # the file's path from the project root, e.g. benchmarks/RESULTS_train.md
    uri: str  # the page's path in the site, e.g. benchmarks/results_train.md

    def title(self) -> str:
        """The file's first level-1 heading (or its name)."""
        match = re.search(r"^# (.+)$", self.source.read_text(encoding="utf-8"), re.MULTILINE)
        return match.group(1).strip() if match else self.source.name

    def markdown(self) -> str:
        """The file's text, with a line under its title saying where it comes from."""
        text = self.source.read_text(encoding="utf-8")
        note = (
            f'!!! info "This page is `{self.relative}`"\n'
            "    Shown as the file holds it; the benchmark scripts rewrite their results files "
            "on each run.\n"
        )
        heading = re.search(r"^# .+$", text, re.MULTILINE)
        if heading is None:
            return f"{note}\n{text}"
        return f"{text[: heading.end()]}\n\n{note}{text[heading.end() :]}"

    def fields(self) -> dict[str, str]:
        """The ``- command:`` and ``- date:`` lines of a results file."""
        return {m.group(1): m.group(2).strip() for m in FIELD.finditer(self.source.read_text())}


def results_pages(folder: Path = BENCHMARKS) -> list[BenchmarkPage]:
    """One page per ``RESULTS*.md``: ``RESULTS.md`` first, then by name."""
    files = sorted(folder.glob("RESULTS*.md"), key=lambda p: (p.stem != "RESULTS", p.name))
    return [
        BenchmarkPage(path, f"benchmarks/{path.name}", f"benchmarks/{path.stem.lower()}.md")
        for path in files
    ]


def document_pages(folder: Path = BENCHMARKS) -> list[BenchmarkPage]:
    """The hand-written benchmark documents (how each benchmark runs)."""
    return [
        BenchmarkPage(folder / name, f"benchmarks/{name}", uri)
        for name, uri in DOCUMENTS.items()
        if (folder / name).exists()
    ]


def results_table(folder: Path = BENCHMARKS) -> str:
    """A table of every results file: its page, the command that wrote it and when."""
    lines = ["| file | what it measures | command | measured |", "|---|---|---|---|"]
    for page in results_pages(folder):
        fields = page.fields()
        command = fields.get("command", "").strip("`")
        shown = f"`{command}`" if command else "on the page"
        link = f"[`{page.relative}`]({page.uri.removeprefix('benchmarks/')})"
        date = fields.get("date", "on the page")
        lines.append(f"| {link} | {page.title()} | {shown} | {date} |")
    return "\n".join(lines) + "\n"
