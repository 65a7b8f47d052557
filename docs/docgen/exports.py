"""The table of export formats, from the ``ExportFormat(...)`` entries of ``export/formats.py``."""

import ast
from pathlib import Path

import griffe

from docgen.project import PACKAGE, SRC, member

FORMATS_FILE = Path(PACKAGE) / "export" / "formats.py"


def export_formats(src: Path = SRC) -> list[dict[str, object]]:
    """Each ``ExportFormat(...)`` of the formats module as ``{field: value}`` (literals only)."""
    cls = member("export.formats.ExportFormat")
    assert isinstance(cls, griffe.Class)
    fields = [
        name
        for name, found in cls.members.items()
        if isinstance(found, griffe.Attribute) and "instance-attribute" in found.labels
    ]
    tree = ast.parse((src / FORMATS_FILE).read_text(encoding="utf-8"))
    calls = [
        call
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and ast.unparse(call.func) == "ExportFormat"
    ]
    formats = []
    for call in sorted(calls, key=lambda c: c.lineno):
        bound = dict(zip(fields, call.args, strict=False))
        bound |= {k.arg: k.value for k in call.keywords if k.arg}
        values: dict[str, object] = {}
        for name, expr in bound.items():
            try:
                values[name] = ast.literal_eval(expr)
            except ValueError:
                values[name] = None  # a name such as _ONNX_PACKAGES: not shown
        formats.append(values)
    return formats


def formats_markdown(src: Path = SRC) -> tuple[str, list[str]]:
    """A table of the export formats: name, file, packages it uses, int8 or not, what it is."""
    lines = [
        "| format | model file in the export folder | packages (`export` extra) | int8 | "
        "what it is |",
        "|---|---|---|---|---|",
    ]
    formats = export_formats(src)
    problems = [] if formats else [f"no ExportFormat(...) found in src/{FORMATS_FILE}"]
    for found in formats:
        if not found.get("description"):
            problems.append(f"export format {found.get('name')!r} has no description")
        packages = found.get("packages")
        if not isinstance(packages, tuple) or not packages:
            problems.append(f"export format {found.get('name')!r} lists no packages literally")
        lines.append(
            f"| `{found.get('name')}` | `{found.get('file')}` | "
            f"{', '.join(map(str, packages)) if isinstance(packages, tuple) else ''} | "
            f"{'yes' if found.get('quantized') else 'no'} | {found.get('description', '')} |"
        )
    return "\n".join(lines) + "\n", problems
