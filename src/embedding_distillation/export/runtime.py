"""Run an exported student without torch or sentence-transformers: tokenizers + a runtime.

An export folder holds the tokenizer and sentence-transformers config at its root and the model
files under ``onnx/`` and ``openvino/`` (sentence-transformers' Hub layout). The graph maps
``input_ids``, ``attention_mask`` (and ``token_type_ids`` for models that use them) to the
final sentence embedding, so encoding is: tokenize (truncate to ``max_seq_length``, pad to the
longest text of the batch), run, collect. Like ``SentenceTransformer.encode``, texts are batched
longest first so that each batch pads little, and the rows come back in input order.

This module imports neither torch nor sentence-transformers (nor, until an encoder is made,
onnxruntime or openvino).
"""

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedding_distillation import extras

logger = logging.getLogger(__name__)

OUTPUT_NAME = "sentence_embedding"
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or ``{}`` when the file does not exist."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def max_seq_length(folder: Path) -> int:
    """The token limit sentence-transformers truncates to, from the export folder's configs.

    ``sentence_bert_config.json``'s ``max_seq_length``, else the tokenizer's
    ``model_max_length``, capped (as sentence-transformers does) at the transformer's
    ``max_position_embeddings``.
    """
    limits = [
        read_json(folder / "sentence_bert_config.json").get("max_seq_length"),
        read_json(folder / "tokenizer_config.json").get("model_max_length"),
    ]
    limit = next((int(x) for x in limits if isinstance(x, int | float) and x < 10**6), None)
    positions = read_json(folder / "config.json").get("max_position_embeddings")
    if limit is None and positions is None:
        raise ValueError(
            f"{folder} says nowhere how many tokens the model takes (no max_seq_length in "
            "sentence_bert_config.json, no model_max_length in tokenizer_config.json, no "
            "max_position_embeddings in config.json); it is not a sentence-transformers export."
        )
    return min(x for x in (limit, positions) if x is not None)


class SentenceTokenizer:
    """The student's tokenizer as sentence-transformers applies it, from ``tokenizer.json``.

    Truncates to :func:`max_seq_length` and pads each batch to its longest text.
    """

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        path = self.folder / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"No tokenizer.json in {self.folder}; pass the export folder (the one that holds "
                "tokenizer.json and the onnx/ or openvino/ subfolder)."
            )
        self.tokenizer = Tokenizer.from_file(str(path))
        self.max_length = max_seq_length(self.folder)
        pad_token = read_json(self.folder / "tokenizer_config.json").get("pad_token")
        if isinstance(pad_token, dict):  # older files store AddedToken dicts
            pad_token = pad_token.get("content")
        padding = self.tokenizer.padding or {}
        pad_token = pad_token or padding.get("pad_token")
        pad_id = self.tokenizer.token_to_id(pad_token) if pad_token else None
        if pad_id is None:
            raise ValueError(
                f"The tokenizer in {self.folder} has no padding token (tokenizer_config.json's "
                f"pad_token is {pad_token!r}); batches of different lengths cannot be padded."
            )
        # tokenizer.json may carry a fixed padding length of its own: pad to the longest instead.
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
        self.tokenizer.enable_truncation(max_length=self.max_length)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids``, ``attention_mask`` and ``token_type_ids``: int64 (batch, seq) each."""
        encodings = self.tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


class ExportedEncoder:
    """Tokenize, batch longest first, run the graph, return rows in input order.

    Subclasses load a model file and implement :meth:`run`.
    """

    def __init__(self, folder: str | Path, file: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / file
        if not self.path.is_file():
            present = sorted(
                p.relative_to(self.folder).as_posix()
                for pattern in ("onnx/*.onnx", "openvino/*.xml")
                for p in self.folder.glob(pattern)
            )
            raise FileNotFoundError(
                f"{self.path} does not exist; model files in {self.folder}: "
                f"{present or 'none'}. Pass one of them as file=."
            )
        self.tokenizer = SentenceTokenizer(self.folder)
        self.input_names: tuple[str, ...] = ()
        self.dimension: int | None = None

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The graph's ``sentence_embedding`` for one batch: float32 (batch, dim)."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts``: float32 (len(texts), dim), in input order."""
        if isinstance(texts, str):
            raise TypeError(f"encode takes a list of texts, got the string {texts[:50]!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        texts = list(texts)
        order = np.argsort([-len(text) for text in texts], kind="stable")  # longest first
        rows: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            batch = order[start : start + batch_size]
            features = self.tokenizer([texts[i] for i in batch])
            embeddings = self.run({name: features[name] for name in self.input_names})
            if rows is None:
                rows = np.empty((len(texts), embeddings.shape[1]), dtype=np.float32)
            rows[batch] = embeddings
        if rows is None:
            return np.empty((0, self.dimension or 0), dtype=np.float32)
        return rows

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.folder)!r}, file={self.path.name!r})"


class OnnxEncoder(ExportedEncoder):
    """An exported ONNX student run by ONNX Runtime on the CPU.

    Args:
        folder: The export folder.
        file: The model file inside it: ``onnx/model.onnx`` or ``onnx/model_qint8.onnx``.
        threads: ONNX Runtime's intra-op threads; ``None`` lets it choose (one per core).
        providers: ONNX Runtime execution providers; default the CPU one.
    """

    def __init__(
        self,
        folder: str | Path,
        file: str = "onnx/model.onnx",
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        super().__init__(folder, file)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(self.path), sess_options=options, providers=list(providers)
        )
        names = [i.name for i in self.session.get_inputs()]
        self.input_names = tuple(n for n in TOKEN_INPUTS if n in names)
        unknown = set(names) - set(self.input_names)
        if unknown or OUTPUT_NAME not in [o.name for o in self.session.get_outputs()]:
            raise ValueError(
                f"{self.path} is not a sentence-embedding graph from this project: it takes "
                f"{names} and returns {[o.name for o in self.session.get_outputs()]}, expected "
                f"inputs among {list(TOKEN_INPUTS)} and an output {OUTPUT_NAME!r}."
            )
        width = self.session.get_outputs()[0].shape[-1]
        self.dimension = width if isinstance(width, int) else None

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """One batch through the ONNX Runtime session."""
        (embeddings,) = self.session.run([OUTPUT_NAME], features)
        return np.asarray(embeddings, dtype=np.float32)


class OpenVinoEncoder(ExportedEncoder):
    """An exported OpenVINO student (IR ``.xml`` + ``.bin``) run by OpenVINO.

    Args:
        folder: The export folder.
        file: The model file inside it: ``openvino/openvino_model.xml`` or the int8 one.
        threads: OpenVINO's inference threads; ``None`` lets it choose.
        device: The OpenVINO device (``CPU``, ``GPU``, ...).
        config: More OpenVINO properties. By default inference runs in float32
            (``INFERENCE_PRECISION_HINT: f32``): on CPUs with bf16 support OpenVINO would
            otherwise compute in bf16 and the embeddings would drift from the torch student's.
    """

    def __init__(
        self,
        folder: str | Path,
        file: str = "openvino/openvino_model.xml",
        threads: int | None = None,
        device: str = "CPU",
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(folder, file)
        import openvino

        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads is not None:
            properties["INFERENCE_NUM_THREADS"] = threads
        properties.update(config or {})
        core = openvino.Core()
        self.compiled = core.compile_model(str(self.path), device, properties)
        names = {name for port in self.compiled.inputs for name in port.get_names()}
        self.input_names = tuple(n for n in TOKEN_INPUTS if n in names)
        self.output = self.compiled.output(OUTPUT_NAME)
        width = self.output.get_partial_shape()[-1]
        self.dimension = width.get_length() if width.is_static else None
        self.request = self.compiled.create_infer_request()

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """One batch through the compiled OpenVINO model."""
        results = self.request.infer(features)
        return np.array(results[self.output], dtype=np.float32)


def load_encoder(folder: str | Path, name: str, threads: int | None = None) -> ExportedEncoder:
    """The encoder for the export format ``name`` (``onnx``, ``openvino_int8``...) in ``folder``.

    Raises:
        ValueError: ``name`` is not an export format.
        MissingExtraError: Its runtime (onnxruntime or openvino, from the ``export`` extra) is
            not installed.
    """
    from embedding_distillation.export.formats import FORMATS

    if name not in FORMATS:
        raise ValueError(f"Unknown export format {name!r}; available: {', '.join(FORMATS)}.")
    file = FORMATS[name].file
    runtime = "openvino" if file.startswith("openvino/") else "onnxruntime"
    extras.require("export", f"Running the {name} export", (runtime,))
    if runtime == "openvino":
        return OpenVinoEncoder(folder, file=file, threads=threads)
    return OnnxEncoder(folder, file=file, threads=threads)
