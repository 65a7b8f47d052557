"""OpenVINO IR of the exported ONNX graph, and its int8 version through nncf.

The IR is converted from ``onnx/model.onnx``, so it is the same checked graph as the ONNX export
rather than a second trace of the torch model; weights stay float32 (``save_model`` would halve
them to float16 by default). int8 is nncf's data-free weight compression, not its post-training
quantization: no calibration texts and near-float agreement, where post-training quantization
is faster but agrees far less with the float model.

Measured options: benchmarks/RESULTS_export.md#int8-openvino-settings
"""

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def convert_to_openvino(onnx_path: Path, xml_path: Path) -> None:
    """Write the float32 OpenVINO IR (``.xml`` + ``.bin``) of the ONNX graph ``onnx_path``."""
    import openvino

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    model = openvino.convert_model(str(onnx_path))
    openvino.save_model(model, str(xml_path), compress_to_fp16=False)


def compress_openvino(xml_path: Path, target: Path) -> None:
    """Write the IR ``xml_path`` with int8 weights to ``target`` (nncf weight compression).

    Data-free: weights become int8 (asymmetric, per output channel), activations stay float
    (OpenVINO's CPU plugin quantizes them on the fly in small groups where it can).
    """
    import nncf
    import openvino

    model = openvino.Core().read_model(str(xml_path))
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    openvino.save_model(compressed, str(target), compress_to_fp16=False)
    logger.info("int8 OpenVINO: weights compressed to int8 by nncf (INT8_ASYM, no calibration).")
