import pytest

from embedding_distillation.export.config import ExportConfig
from embedding_distillation.extras import EXTRAS, MissingExtraError


@pytest.mark.parametrize("params", [None, {}, {"formats": None}])
def test_null_formats_without_the_export_extra_mean_no_exports(without_packages, params):
    without_packages(*EXTRAS["export"])
    assert ExportConfig.from_params(params).formats == ()


@pytest.mark.parametrize("formats", [["onnx_int8"], "onnx onnx_int8"])  # a list, or --params
def test_a_named_format_without_the_export_extra_stops_the_run(without_packages, formats):
    without_packages(*EXTRAS["export"])
    with pytest.raises(
        MissingExtraError,
        match=r"^Export format '(onnx|onnx_int8)' needs the export extra \(onnx, onnxscript, "
        r"onnxruntime are not installed\): pip install 'embedding-distillation\[export\]'",
    ):
        ExportConfig.from_params({"formats": formats})


def test_an_empty_list_needs_no_extra(without_packages):
    without_packages(*EXTRAS["export"])
    assert ExportConfig(formats=()).formats == ()


def test_null_with_the_export_extra_means_every_format():
    assert ExportConfig().formats == ("onnx", "onnx_int8", "openvino", "openvino_int8")
