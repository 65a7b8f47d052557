"""The agreement gate: does an export embed texts as the torch student does?

A float32 export must reproduce the torch student's embeddings up to float rounding; the gate
compares the two row by row and reports the text they agree on least. int8 exports are not
held to it (they differ by design and are judged on STS-B); :func:`agreement` still measures
them.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from embedding_distillation.export.errors import AgreementError
from embedding_distillation.export.formats import FP32_MIN_COSINE

TEXT_SHOWN = 200  # characters of the worst text quoted in an error


@dataclass(frozen=True)
class Agreement:
    """How closely an export's embeddings follow the torch student's on the same texts.

    Attributes:
        min_cosine: The smallest row-wise cosine similarity.
        mean_cosine: The mean row-wise cosine similarity.
        worst_index: The row (text) with the smallest cosine.
        worst_text: That text.
    """

    min_cosine: float
    mean_cosine: float
    worst_index: int
    worst_text: str


def agreement(reference: np.ndarray, exported: np.ndarray, texts: Sequence[str]) -> Agreement:
    """Row-wise cosine between the torch student's and an export's embeddings of ``texts``.

    Args:
        reference: The torch student's embeddings, (len(texts), dim).
        exported: The export's embeddings of the same texts in the same order, (len(texts), dim).
        texts: The texts (to name the worst one).

    Raises:
        ValueError: The shapes differ, or do not match the number of texts, or there are none.
    """
    reference = np.asarray(reference, dtype=np.float64)
    exported = np.asarray(exported, dtype=np.float64)
    if reference.shape != exported.shape or reference.ndim != 2 or len(texts) != len(reference):
        raise ValueError(
            f"Cannot compare embeddings of shapes {reference.shape} (torch) and {exported.shape} "
            f"(export) for {len(texts)} texts: both must be (texts, dim), the same texts in the "
            "same order."
        )
    if not len(texts):
        raise ValueError("No texts to compare the export with the torch student on.")
    reference_norms = np.linalg.norm(reference, axis=1)
    exported_norms = np.linalg.norm(exported, axis=1)
    products = np.maximum(reference_norms * exported_norms, np.finfo(np.float64).tiny)
    cosines = np.einsum("ij,ij->i", reference, exported) / products
    # A zero vector agrees with a zero vector only.
    cosines[(reference_norms == 0) | (exported_norms == 0)] = 0.0
    cosines[(reference_norms == 0) & (exported_norms == 0)] = 1.0
    worst = int(np.argmin(cosines))
    return Agreement(
        min_cosine=float(cosines[worst]),
        mean_cosine=float(cosines.mean()),
        worst_index=worst,
        worst_text=texts[worst],
    )


def check_agreement(
    reference: np.ndarray,
    exported: np.ndarray,
    texts: Sequence[str],
    *,
    export_name: str,
    threshold: float = FP32_MIN_COSINE,
) -> Agreement:
    """:func:`agreement`, raising when the minimum cosine is below ``threshold``.

    Args:
        reference: The torch student's embeddings, (len(texts), dim).
        exported: The export's embeddings of the same texts, (len(texts), dim).
        texts: The texts both embedded.
        export_name: What the export is (``onnx``, ``openvino``, a file): named in the error.
        threshold: The least acceptable cosine (0.9999 for float32 exports).

    Raises:
        AgreementError: The export disagrees with the torch student on at least one text.
    """
    found = agreement(reference, exported, texts)
    if found.min_cosine < threshold:
        text = found.worst_text
        shown = text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "..."
        raise AgreementError(
            f"The {export_name} export disagrees with the torch student: min cosine "
            f"{found.min_cosine:.6f} is below the threshold {threshold} (mean "
            f"{found.mean_cosine:.6f} over {len(texts)} texts), worst on text "
            f"#{found.worst_index}: {shown!r}. The export does not compute what the student "
            "computes: do not ship it (the torch model is unaffected)."
        )
    return found
