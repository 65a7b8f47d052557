"""Exports of a trained student that people can ship, and a runtime for them without torch.

Importing this package (or its ``formats``, ``runtime``, ``agreement`` and ``errors`` modules)
never imports torch or sentence-transformers; :func:`export_student`, which needs them, loads
lazily::

    from embedding_distillation.export import check_formats, export_student, load_encoder

    formats = check_formats(["onnx", "onnx_int8"])        # before training: fails fast
    files = export_student(student, "data/06_models/student_export", formats)
    encoder = load_encoder("data/06_models/student_export", "onnx_int8", threads=2)
    embeddings = encoder.encode(texts, batch_size=32)      # float32 (len(texts), dim)
"""

from typing import Any

from embedding_distillation.export.agreement import Agreement, agreement, check_agreement
from embedding_distillation.export.errors import AgreementError, ExportError
from embedding_distillation.export.formats import (
    FORMATS,
    FP32_MIN_COSINE,
    ExportFormat,
    StudentExport,
    check_formats,
    default_formats,
)
from embedding_distillation.export.runtime import (
    ExportedEncoder,
    OnnxEncoder,
    OpenVinoEncoder,
    load_encoder,
)

__all__ = [
    "FORMATS",
    "FP32_MIN_COSINE",
    "Agreement",
    "AgreementError",
    "ExportError",
    "ExportFormat",
    "ExportedEncoder",
    "OnnxEncoder",
    "OpenVinoEncoder",
    "StudentExport",
    "agreement",
    "check_agreement",
    "check_formats",
    "default_formats",
    "export_student",
    "load_encoder",
]


def __getattr__(name: str) -> Any:
    if name == "export_student":  # imports torch: only when asked for
        from embedding_distillation.export.student_export import export_student

        return export_student
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
