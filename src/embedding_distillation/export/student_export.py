"""Write a trained student in the formats people ship: ONNX, int8 ONNX, OpenVINO (+ int8).

One call, :func:`export_student`, writes every requested format into one folder in
sentence-transformers' Hub layout: the student as ``model.save`` writes it (tokenizer files,
``modules.json``, ``config_sentence_transformers.json``, module configs; the torch weights
unless ``torch_weights=False``) with the exports under ``onnx/`` and ``openvino/``. The folder is
built under a temporary name beside its destination and renamed into place only once every
format is written and checked, so a crash never leaves a half export that looks complete.

Each export is checked against the student before it is kept: the runtime of
:mod:`embedding_distillation.export.runtime` (tokenizers, no torch) encodes a few texts of
mixed lengths (an empty one, one longer than ``max_seq_length``, and the caller's), and the
float32 formats must agree with the torch student within the gate
(:func:`~embedding_distillation.export.agreement.check_agreement`, min cosine 0.9999). int8
formats are measured and logged, not gated.

A static-embedding student (``StaticEmbedding`` + ``Normalize``) needs no graph: its embedding
matrix and tokenizer are its deployable form. It is saved as it is (the same Hub layout) and no
format is returned.
"""

import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import StaticEmbedding, Transformer

from embedding_distillation.export.agreement import agreement, check_agreement
from embedding_distillation.export.errors import ExportError
from embedding_distillation.export.formats import (
    FORMATS,
    check_formats,
    default_formats,
    model_file_bytes,
)
from embedding_distillation.export.onnx_graph import export_onnx, load_clean_copy
from embedding_distillation.export.onnx_int8 import quantize_onnx
from embedding_distillation.export.openvino_ir import compress_openvino, convert_to_openvino
from embedding_distillation.export.runtime import load_encoder
from embedding_distillation.models import module_names

logger = logging.getLogger(__name__)

ONNX_FILE = FORMATS["onnx"].file
OPENVINO_FILE = FORMATS["openvino"].file
# Texts every export is checked on: mixed lengths, an empty text and one past any token limit.
CHECK_TEXTS = (
    "",
    "Hello.",
    "A cat sleeps on the warm windowsill.",
    "The committee postponed its decision until the budget figures for next year are final.",
    "Rivers carry sediment from the mountains to the sea, where it settles into deltas that "
    "shift over centuries as floods and tides rework them.",
    " ".join(["Embeddings map sentences to vectors so that similar meanings lie close."] * 60),
)
TORCH_WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin")


def is_static(model: SentenceTransformer) -> bool:
    """True for a static-embedding student (a ``StaticEmbedding`` first module)."""
    return isinstance(model[0], StaticEmbedding)


def check_exportable(model: SentenceTransformer) -> None:
    """Fail before any work when the student does not start with a Hugging Face transformer."""
    first = model[0]
    if not isinstance(first, Transformer):
        raise ExportError(
            f"Cannot export the student (modules {module_names(model)}): module 0 "
            f"({type(first).__name__}) is not a Hugging Face Transformer module; only transformer "
            "students are exported to ONNX/OpenVINO (static-embedding students are saved as "
            "they are). The trained model is kept; set the export formats to []."
        )


def export_student(
    model: SentenceTransformer,
    folder: str | Path,
    formats: Sequence[str] | None = None,
    *,
    check_texts: Sequence[str] = (),
    torch_weights: bool = True,
) -> dict[str, Path]:
    """Write ``model`` in ``formats`` into ``folder`` (replaced as a whole), checked.

    Args:
        model: The trained student; not modified (a clean copy is exported).
        folder: The export folder; an existing one is replaced once the new one is complete.
        formats: Format names (:data:`~embedding_distillation.export.formats.FORMATS`);
            ``None`` for :func:`~embedding_distillation.export.formats.default_formats`,
            ``[]`` for none (nothing is written).
        check_texts: More texts to check the exports on, besides the built-in ones (a few
            dozen real sentences make the check meaningful; every one costs a forward pass per
            format).
        torch_weights: Keep the torch weights in the folder, so that it is also a complete
            sentence-transformers model (``SentenceTransformer(folder)``); ``False`` keeps only
            what the exports need (configs and tokenizer).

    Returns:
        ``{format name: path of its model file}``, e.g. ``{"onnx": folder/"onnx/model.onnx"}``;
        empty for a static-embedding student or no formats.

    Raises:
        ValueError, ModuleNotFoundError, TypeError: Bad format names, missing packages
            (:func:`~embedding_distillation.export.formats.check_formats`).
        ExportError: The student cannot be exported (naming the module that failed), or a
            float32 export disagrees with it
            (:class:`~embedding_distillation.export.errors.AgreementError`).
    """
    names = check_formats(default_formats() if formats is None else formats)
    folder = Path(folder)
    if not names:
        logger.info("No export formats requested: nothing written to %s.", folder)
        return {}
    static = is_static(model)
    if not static:
        check_exportable(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        model.save(str(staging))
        if static:
            logger.info(
                "The student is a static-embedding model (%s): its embedding matrix and "
                "tokenizer are its deployable form, so it is saved as it is to %s and no "
                "ONNX/OpenVINO format is written (requested: %s).",
                module_names(model),
                folder,
                list(names),
            )
            written: dict[str, Path] = {}
        else:
            written = write_formats(staging, names, [*CHECK_TEXTS, *check_texts])
            if not torch_weights:
                remove_torch_weights(staging)
        replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: folder / relative for name, relative in written.items()}


def write_formats(staging: Path, names: Sequence[str], texts: Sequence[str]) -> dict[str, Path]:
    """Write and check ``names`` in ``staging`` (which holds the saved student).

    Returns:
        ``{format name: model file relative to staging}``.
    """
    clean = load_clean_copy(staging)
    reference = np.asarray(
        clean.encode(list(texts), batch_size=8, show_progress_bar=False), dtype=np.float32
    )
    started = time.perf_counter()
    export_onnx(clean, staging / ONNX_FILE)
    timings = {"onnx": time.perf_counter() - started}
    del clean
    for name in names:
        started = time.perf_counter()
        try:
            write_format(staging, name)
        except Exception as e:
            raise ExportError(
                f"Could not write the {name} export ({FORMATS[name].description}): "
                f"{type(e).__name__}: {e}. The trained model is kept; drop {name!r} from the "
                "export formats to export the others."
            ) from e
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
    for name in names:
        check_format(staging, name, reference, texts, timings[name])
    for intermediate, name in ((ONNX_FILE, "onnx"), (OPENVINO_FILE, "openvino")):
        if name not in names and (staging / intermediate).exists():
            remove_model_file(staging / intermediate)
    return {name: Path(FORMATS[name].file) for name in names}


def write_format(staging: Path, name: str) -> None:
    """Write the format ``name`` from the float32 ONNX graph in ``staging`` (the IR, for int8)."""
    if name == "onnx_int8":
        quantize_onnx(staging / ONNX_FILE, staging / FORMATS[name].file)
    if name in ("openvino", "openvino_int8") and not (staging / OPENVINO_FILE).exists():
        convert_to_openvino(staging / ONNX_FILE, staging / OPENVINO_FILE)
    if name == "openvino_int8":
        compress_openvino(staging / OPENVINO_FILE, staging / FORMATS[name].file)


def check_format(
    staging: Path, name: str, reference: np.ndarray, texts: Sequence[str], seconds: float
) -> None:
    """Encode ``texts`` with the export ``name`` and hold float32 formats to the gate."""
    encoded = load_encoder(staging, name).encode(list(texts), batch_size=8)
    if FORMATS[name].quantized:
        found = agreement(reference, encoded, texts)
    else:
        found = check_agreement(reference, encoded, texts, export_name=name)
    logger.info(
        "Export %s (%s): written in %.1f s, %.1f MB, min cosine to the torch student %.6f "
        "(mean %.6f, %d texts)%s.",
        name,
        FORMATS[name].file,
        seconds,
        model_file_bytes(staging / FORMATS[name].file) / 2**20,
        found.min_cosine,
        found.mean_cosine,
        len(texts),
        ", not gated (int8)" if FORMATS[name].quantized else "",
    )


def remove_model_file(path: Path) -> None:
    """Delete a model file that was only an intermediate step, with its companions."""
    for companion in path.parent.glob(f"{path.stem}.*"):
        companion.unlink()
    if not any(path.parent.iterdir()):
        path.parent.rmdir()


def remove_torch_weights(folder: Path) -> None:
    """Delete the torch weight files of a saved sentence-transformers model."""
    for pattern in TORCH_WEIGHT_PATTERNS:
        for path in folder.rglob(pattern):
            path.unlink()


def replace_folder(staging: Path, folder: Path) -> None:
    """Move the complete ``staging`` folder to ``folder``, replacing what was there."""
    previous = None
    if folder.exists():
        previous = folder.with_name(f".{folder.name}.replaced-{uuid.uuid4().hex[:8]}")
        folder.rename(previous)
    staging.rename(folder)
    if previous is not None:
        shutil.rmtree(previous)
