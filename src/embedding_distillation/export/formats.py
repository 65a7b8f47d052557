"""The export formats a trained student can be written in, and the packages each one needs.

Torch-free: the distillation pipeline checks the requested formats here before any model loads,
so a typo or a missing package stops the run before training, not after it. Every format's
packages come with the ``export`` extra (:mod:`embedding_distillation.extras`).
"""

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedding_distillation import extras

logger = logging.getLogger(__name__)

# Minimum cosine between a full-precision export's embeddings and the torch student's.
FP32_MIN_COSINE = 0.9999


@dataclass(frozen=True)
class ExportFormat:
    """One way of shipping a student.

    Attributes:
        name: The name used in parameters (``onnx``, ``onnx_int8``, ...).
        file: The model file, relative to the export folder (sentence-transformers' Hub layout).
        packages: Import names of the Python packages writing it needs (all in the ``export``
            extra).
        quantized: int8 weights: not held to :data:`FP32_MIN_COSINE` (judged on STS-B instead).
        description: One line for logs and error messages.
        label: Its name in reports and model cards (``ONNX int8``).
    """

    name: str
    file: str
    packages: tuple[str, ...]
    quantized: bool
    description: str
    label: str

    def missing_packages(self) -> list[str]:
        """The packages of :attr:`packages` that cannot be imported here."""
        return extras.missing_packages(self.packages)


# The ONNX graph comes from torch.onnx's exporter (onnx + onnxscript) and is checked with
# onnxruntime; the other formats are derived from it, so they need those packages too.
FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "onnx",
            "onnx/model.onnx",
            ("onnx", "onnxscript", "onnxruntime"),
            quantized=False,
            description="the whole student (transformer, pooling, Dense, Normalize) as one "
            "float32 ONNX graph",
            label="ONNX",
        ),
        ExportFormat(
            "onnx_int8",
            "onnx/model_qint8.onnx",
            ("onnx", "onnxscript", "onnxruntime"),
            quantized=True,
            description="the ONNX graph with int8 weights (onnxruntime dynamic quantization)",
            label="ONNX int8",
        ),
        ExportFormat(
            "openvino",
            "openvino/openvino_model.xml",
            ("onnx", "onnxscript", "onnxruntime", "openvino"),
            quantized=False,
            description="the ONNX graph as float32 OpenVINO IR (.xml + .bin)",
            label="OpenVINO",
        ),
        ExportFormat(
            "openvino_int8",
            "openvino/openvino_model_int8.xml",
            ("onnx", "onnxscript", "onnxruntime", "openvino", "nncf"),
            quantized=True,
            description="the OpenVINO IR with int8 weights (nncf weight compression, no "
            "calibration data)",
            label="OpenVINO int8",
        ),
    )
}

# The formats written when none are named, in order: those whose packages are installed.
DEFAULT_FORMATS = ("onnx", "onnx_int8", "openvino", "openvino_int8")


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Validate requested export formats before any work starts.

    Args:
        formats: Format names, e.g. ``["onnx", "onnx_int8"]``; duplicates are dropped.

    Returns:
        The names, in the order given, without duplicates.

    Raises:
        TypeError: ``formats`` is a single string rather than a list of names.
        ValueError: A name is not a known format (the message lists the known ones).
        MissingExtraError: A named format needs a package of the ``export`` extra that is not
            installed (the message gives the ``pip install`` line); a ``ModuleNotFoundError``.
    """
    if isinstance(formats, str):
        raise TypeError(
            f"export formats must be a list of names, got the string {formats!r}; write "
            f"[{formats!r}] (available: {', '.join(FORMATS)})."
        )
    names = tuple(dict.fromkeys(formats))
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ValueError(
            f"Unknown export format(s) {unknown}; available formats are "
            f"{', '.join(FORMATS)} (or an empty list for none)."
        )
    for name in names:
        extras.require(
            "export",
            f"Export format {name!r}",
            FORMATS[name].packages,
            otherwise=f"drop {name!r} from the export formats",
        )
    return names


def default_formats() -> tuple[str, ...]:
    """The formats written when none are named: those of :data:`DEFAULT_FORMATS` installed here.

    With the ``export`` extra that is all four. Without it, none: a bare install still trains
    and evaluates, and one log line (once per process) names the formats left out and the
    ``pip install`` line that adds them. A format named explicitly is never skipped like this:
    :func:`check_formats` raises instead.
    """
    chosen = tuple(name for name in DEFAULT_FORMATS if not FORMATS[name].missing_packages())
    left_out = tuple(name for name in DEFAULT_FORMATS if name not in chosen)
    if left_out:
        _log_left_out(chosen, left_out)
    return chosen


@functools.cache
def _log_left_out(chosen: tuple[str, ...], left_out: tuple[str, ...]) -> None:
    """Say once per process which default formats are skipped, and how to get them."""
    absent = extras.missing_packages(
        list(dict.fromkeys(p for name in left_out for p in FORMATS[name].packages))
    )
    logger.info(
        "export.formats is null: exporting the student as %s; left out: %s (%s not installed). "
        "%s adds them.",
        ", ".join(chosen) or "nothing",
        ", ".join(left_out),
        ", ".join(absent),
        extras.install_command("export"),
        extra={"markup": False},  # Kedro's rich handler would take "[export]" for a style tag
    )


def model_file_bytes(path: Path) -> int:
    """Bytes of a model file with its companions (``.bin`` of an IR, external ONNX data)."""
    return sum(p.stat().st_size for p in path.parent.glob(f"{path.stem}.*"))


@dataclass(frozen=True)
class StudentExport:
    """A folder in sentence-transformers' Hub layout with the student's exports.

    Attributes:
        folder: The folder: tokenizer and configs at its root, ``onnx/``, ``openvino/``.
        formats: The formats it holds (names of :data:`FORMATS`), in the order written.
    """

    folder: Path
    formats: tuple[str, ...]

    @classmethod
    def read(cls, folder: Path) -> "StudentExport":
        """The formats whose model file lies in ``folder``."""
        return cls(folder, tuple(name for name, f in FORMATS.items() if (folder / f.file).exists()))
