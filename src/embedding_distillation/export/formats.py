"""The export formats a trained student can be written in, and the packages each one needs.

Torch-free: the distillation pipeline checks the requested formats here before any model loads,
so a typo or a missing package stops the run before training, not after it.
"""

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Minimum cosine between a full-precision export's embeddings and the torch student's.
FP32_MIN_COSINE = 0.9999


@dataclass(frozen=True)
class ExportFormat:
    """One way of shipping a student.

    Attributes:
        name: The name used in parameters (``onnx``, ``onnx_int8``, ...).
        file: The model file, relative to the export folder (sentence-transformers' Hub layout).
        packages: Import names of the Python packages writing it needs.
        pip: What to ``pip install`` when one of them is missing.
        quantized: int8 weights: not held to :data:`FP32_MIN_COSINE` (judged on STS-B instead).
        description: One line for logs and error messages.
        label: Its name in reports and model cards (``ONNX int8``).
    """

    name: str
    file: str
    packages: tuple[str, ...]
    pip: str
    quantized: bool
    description: str
    label: str

    def missing_packages(self) -> list[str]:
        """The packages of :attr:`packages` that cannot be imported here."""
        return [name for name in self.packages if importlib.util.find_spec(name) is None]


# The ONNX graph comes from torch.onnx's exporter (onnx + onnxscript) and is checked with
# onnxruntime; the other formats are derived from it, so they need those packages too.
_ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")

FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "onnx",
            "onnx/model.onnx",
            _ONNX_PACKAGES,
            "onnx onnxscript onnxruntime",
            quantized=False,
            description="the whole student (transformer, pooling, Dense, Normalize) as one "
            "float32 ONNX graph",
            label="ONNX",
        ),
        ExportFormat(
            "onnx_int8",
            "onnx/model_qint8.onnx",
            _ONNX_PACKAGES,
            "onnx onnxscript onnxruntime",
            quantized=True,
            description="the ONNX graph with int8 weights (onnxruntime dynamic quantization)",
            label="ONNX int8",
        ),
        ExportFormat(
            "openvino",
            "openvino/openvino_model.xml",
            (*_ONNX_PACKAGES, "openvino"),
            "openvino",
            quantized=False,
            description="the ONNX graph as float32 OpenVINO IR (.xml + .bin)",
            label="OpenVINO",
        ),
        ExportFormat(
            "openvino_int8",
            "openvino/openvino_model_int8.xml",
            (*_ONNX_PACKAGES, "openvino", "nncf"),
            "openvino nncf",
            quantized=True,
            description="the OpenVINO IR with int8 weights (nncf weight compression, no "
            "calibration data)",
            label="OpenVINO int8",
        ),
    )
}

# The formats written when none are named, in order; the OpenVINO ones only where installed.
DEFAULT_FORMATS = ("onnx", "onnx_int8")
OPTIONAL_DEFAULT_FORMATS = ("openvino", "openvino_int8")


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """Validate requested export formats before any work starts.

    Args:
        formats: Format names, e.g. ``["onnx", "onnx_int8"]``; duplicates are dropped.

    Returns:
        The names, in the order given, without duplicates.

    Raises:
        TypeError: ``formats`` is a single string rather than a list of names.
        ValueError: A name is not a known format (the message lists the known ones).
        ModuleNotFoundError: A format needs a package that is not installed (the message says
            what to ``pip install``).
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
        missing = FORMATS[name].missing_packages()
        if missing:
            raise ModuleNotFoundError(
                f"Export format {name!r} ({FORMATS[name].description}) needs the package(s) "
                f"{', '.join(missing)}, which are not installed here: run "
                f"`pip install {FORMATS[name].pip}`, or drop {name!r} from the export formats."
            )
    return names


def default_formats() -> tuple[str, ...]:
    """The ONNX pair, plus the OpenVINO pair where openvino (and nncf, for int8) are installed."""
    optional = tuple(n for n in OPTIONAL_DEFAULT_FORMATS if not FORMATS[n].missing_packages())
    return DEFAULT_FORMATS + optional


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
