"""The whole student as one ONNX graph: token ids in, final sentence embedding out.

sentence-transformers' own ONNX export (through optimum) covers only the Transformer module and
leaves Pooling, Dense and Normalize to torch at run time; here every module of the student runs
inside the graph, so an export needs nothing but a tokenizer and a runtime.

The exporter is ``torch.onnx.export(dynamo=True)``, the torch.export-based one: the default and
recommended exporter since torch 2.9, whose TorchScript predecessor (``dynamo=False``) is
deprecated. It records the model's forward for symbolic batch and sequence sizes
(``torch.export`` dynamic shapes) and translates it with onnxscript, which also optimises the
graph (constant folding, dead code).

The model exported is a clean copy loaded from the saved student folder on the CPU in float32,
never the caller's object: patches that this project puts on a model in memory (the sdpa forward
of MPNet attention, which torch.export cannot decompose with symbolic shapes; the activation
checkpointing wrappers; torch.compile; flash attention on a GPU) are instance attributes that a
reload does not have, so the graph is the one a user who loads the saved model would run.
"""

import logging
from pathlib import Path
from typing import Any

import torch
from sentence_transformers import SentenceTransformer

from embedding_distillation.export.errors import ExportError
from embedding_distillation.export.runtime import OUTPUT_NAME
from embedding_distillation.models import module_names

logger = logging.getLogger(__name__)

# Above this many bytes of weights, the graph keeps them in a file beside it (protobuf's 2 GB cap).
EXTERNAL_DATA_BYTES = 1_800_000_000
# Two example texts of different lengths: torch.export specialises sizes 0 and 1.
EXAMPLE_TEXTS = ("A short example.", "A somewhat longer example sentence, to trace the graph with.")


class SentenceEmbeddingGraph(torch.nn.Module):
    """A sentence-transformers model's modules as one forward over token tensors.

    Appends the index of a module that raises to ``failures``, so that an export failure names
    it. Read the caller's own reference to that list afterwards: torch.export restores the
    module's attributes after tracing, rebinding :attr:`failures` to a copy of its old value.
    """

    def __init__(self, model: SentenceTransformer, failures: list[int] | None = None) -> None:
        super().__init__()
        self.stages = torch.nn.ModuleList(list(model))
        self.failures = [] if failures is None else failures

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, seq) token tensors -> (batch, dim) sentence embeddings."""
        features: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        for index, module in enumerate(self.stages):
            try:
                features = module(features)
            except Exception:
                self.failures.append(index)
                raise
        return features["sentence_embedding"]


def load_clean_copy(folder: Path) -> SentenceTransformer:
    """The student saved in ``folder``, loaded afresh on the CPU in float32, in eval mode.

    ``trust_remote_code``: the folder was just written from the caller's model, so any module
    class it names is code that already runs in this process.
    """
    try:
        model = SentenceTransformer(
            str(folder), device="cpu", local_files_only=True, trust_remote_code=True
        )
    except Exception as e:
        raise ExportError(
            f"Could not reload the student saved in {folder} to export a clean copy of it: "
            f"{type(e).__name__}: {e}. The trained model is kept; export it without the "
            "ONNX/OpenVINO formats (export formats: [])."
        ) from e
    return model.float().eval()


def token_inputs(model: SentenceTransformer) -> tuple[str, ...]:
    """The graph's inputs: ``input_ids``, ``attention_mask``, and ``token_type_ids`` if used.

    ``token_type_ids`` is an input only when the student's tokenizer produces it (BERT's
    does, MPNet's does not), so the runtime feeds exactly what sentence-transformers would.
    """
    features = model.preprocess(list(EXAMPLE_TEXTS))
    names = ["input_ids", "attention_mask"]
    missing = [name for name in names if name not in features]
    if missing:
        raise ExportError(
            f"Module 0 ({type(model[0]).__name__}) of the student does not tokenize into "
            f"{names} (its features: {sorted(features)}); only token-id transformer students "
            "can be exported to ONNX."
        )
    if "token_type_ids" in features:
        names.append("token_type_ids")
    return tuple(names)


def export_onnx(model: SentenceTransformer, path: Path) -> tuple[str, ...]:
    """Write ``model`` (a clean CPU float32 copy) as one ONNX graph to ``path``.

    Inputs are int64 (batch, sequence) tensors with both axes dynamic; the output
    ``sentence_embedding`` is (batch, dim).

    Returns:
        The graph's input names.

    Raises:
        ExportError: torch.onnx could not export the model; names the module that failed.
    """
    names = token_inputs(model)
    features = model.preprocess(list(EXAMPLE_TEXTS))
    example = tuple(features[name] for name in names)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    failures: list[int] = []
    graph = SentenceEmbeddingGraph(model, failures).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            program = torch.onnx.export(
                graph,
                example,
                input_names=list(names),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                dynamo=True,
                optimize=True,
                verbose=False,
            )
        assert program is not None, "the dynamo exporter returns the program"
        program.save(str(path), external_data=weight_bytes > EXTERNAL_DATA_BYTES)
    except Exception as e:
        failed = failures[0] if failures else None
        raise ExportError(failure_message(model, failed, e)) from e
    return names


def failure_message(model: SentenceTransformer, failed: int | None, error: Exception) -> str:
    """What to tell the user when torch.onnx fails: the module and the first line of the cause."""
    root: BaseException = error
    while (inner := root.__cause__ or root.__context__) is not None:
        root = inner  # the innermost exception: torch.onnx wraps the one that matters
    cause = next((line for line in str(root).splitlines() if line.strip()), "")
    modules = module_names(model)
    where = (
        f"module {failed} ({modules[failed]}) of the student failed while torch.export traced it"
        if failed is not None
        else "torch.export/torch.onnx failed outside the modules' forward passes"
    )
    return (
        f"Could not export the student (modules {modules}) to ONNX: {where}: "
        f"{type(root).__name__}: {cause[:500]}. The trained model is kept as it is; export it "
        "without the ONNX formats (export formats: []), or replace that module with one that "
        "torch.export can trace."
    )
