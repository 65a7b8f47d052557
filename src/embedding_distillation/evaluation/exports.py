"""The student's exports in the evaluation: which ones to measure, and which ones to recommend.

A float32 export (ONNX, OpenVINO) has passed the agreement gate when it was written, so it is
as good as the torch student. An int8 export is recommended only when it keeps at least
``INT8_MIN_SHARE`` % of the float32 student's STS Benchmark score; otherwise it is kept, and
marked "not recommended" in the report and on the model card.
"""

from pathlib import Path
from typing import Any

from embedding_distillation.evaluation.encoders import EvaluatedModel, from_export
from embedding_distillation.export.formats import FORMATS

INT8_MIN_SHARE = 99.0  # % of the float32 student's STS-B an int8 export must keep
NAMES = {name: export_format.label for name, export_format in FORMATS.items()}


def export_models(
    folder: Path,
    formats: tuple[str, ...],
    *,
    source: str,
    threads: int,
    prompts: dict[str, str] | None = None,
) -> dict[str, EvaluatedModel]:
    """The exports in ``folder``, each run on ``threads`` threads (the torch student's count)."""
    return {
        name: from_export(folder, name, source, threads=threads, prompts=prompts)
        for name in formats
    }


def add_verdicts(metrics: dict[str, Any], formats: tuple[str, ...]) -> None:
    """Give each export's entry ``recommended`` (True, False, None when not judged) and why."""
    for name in formats:
        entry = metrics.get(name)
        if entry is None:
            continue
        share = entry.get("sts_benchmark", {}).get("percent_of_student")
        if not FORMATS[name].quantized:
            entry["recommended"] = True
            entry["verdict"] = "matches the torch student (agreement gate passed)"
        elif share is None:
            entry["recommended"] = None
            entry["verdict"] = "not judged: no STS Benchmark pairs"
        elif share >= INT8_MIN_SHARE:
            entry["recommended"] = True
            entry["verdict"] = f"keeps {share:.1f} % of the student's STS-B"
        else:
            entry["recommended"] = False
            entry["verdict"] = (
                f"not recommended: keeps {share:.1f} % of the student's STS-B "
                f"(below {INT8_MIN_SHARE:g} %)"
            )
