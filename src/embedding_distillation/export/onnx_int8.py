"""int8 ONNX: onnxruntime's dynamic quantization of the float32 graph.

Weights are stored in int8 and activations quantized per batch at run time: no calibration data,
and integer MatMul kernels on the CPU. Settings, each chosen by measurement: signed per-channel
weights; MatMul and Gather (the embedding tables) quantized; width-narrowing MatMuls (the
feed-forward output projections, whose post-GELU inputs carry outliers) kept float32; 7-bit
weights (``reduce_range``), since CPUs without VNNI saturate with 8-bit ones.

Measured options: benchmarks/RESULTS_export.md#int8-onnx-settings
"""

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

QUANTIZED_OPS = ("MatMul", "Gather")


def narrowing_matmuls(path: Path) -> list[str]:
    """The MatMul nodes of ``path`` whose constant weight narrows the width (rows > columns).

    In a transformer these are the feed-forward output projections.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and len(shape := shapes.get(node.input[1], ())) == 2
        and shape[0] > shape[1]
    ]


def quantize_onnx(source: Path, target: Path) -> None:
    """Write the int8 version of the float32 graph ``source`` to ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kept_float = narrowing_matmuls(source)
    quantize_dynamic(
        source,
        target,
        op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True,
        reduce_range=True,  # 7-bit weights: no u8s8 saturation on CPUs without VNNI
        weight_type=QuantType.QInt8,
        nodes_to_exclude=kept_float,
    )
    logger.info(
        "int8 ONNX: %s and Gather weights in int8 (per channel), %d width-narrowing MatMuls "
        "kept in float32.",
        QUANTIZED_OPS[0],
        len(kept_float),
    )
