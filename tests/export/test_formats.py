import logging

import pytest

from embedding_distillation.export import formats
from embedding_distillation.export.formats import FORMATS, check_formats, default_formats
from embedding_distillation.extras import EXTRAS, MissingExtraError


def test_check_formats_keeps_order_and_drops_duplicates():
    assert check_formats(["onnx_int8", "onnx", "onnx_int8"]) == ("onnx_int8", "onnx")
    assert check_formats([]) == ()


def test_unknown_format_lists_the_available_ones():
    with pytest.raises(
        ValueError,
        match=r"Unknown export format\(s\) \['tflite'\]; available formats are onnx, onnx_int8, openvino, openvino_int8",
    ):
        check_formats(["onnx", "tflite"])


def test_a_single_string_is_refused():
    with pytest.raises(
        TypeError, match=r"a list of names, got the string 'onnx'; write \['onnx'\]"
    ):
        check_formats("onnx")


@pytest.mark.parametrize(
    ("name", "hidden"),
    [
        ("onnx", "onnxscript"),
        ("onnx_int8", "onnxruntime"),
        ("openvino", "openvino"),
        ("openvino_int8", "nncf"),
    ],
)
def test_a_named_format_without_the_export_extra_names_the_pip_line(without_packages, name, hidden):
    without_packages(hidden)
    with pytest.raises(
        MissingExtraError,
        match=rf"^Export format '{name}' needs the export extra \({hidden} is not installed\): "
        r"pip install 'embedding-distillation\[export\]' \(in a clone of the project: "
        rf"pip install -e '\.\[export\]'\), or drop '{name}' from the export formats\.$",
    ):
        check_formats([name])


def test_a_format_needs_only_its_own_packages(without_packages):
    without_packages("nncf")
    assert check_formats(["onnx", "openvino"]) == ("onnx", "openvino")  # these need no nncf


def test_default_formats_are_those_installed(without_packages):
    assert default_formats() == ("onnx", "onnx_int8", "openvino", "openvino_int8")
    without_packages("nncf")
    assert default_formats() == ("onnx", "onnx_int8", "openvino")
    without_packages("openvino", "nncf")
    assert default_formats() == ("onnx", "onnx_int8")


def test_null_without_the_export_extra_exports_nothing_and_says_so_once(without_packages, caplog):
    formats._log_left_out.cache_clear()
    without_packages(*EXTRAS["export"])
    with caplog.at_level(logging.INFO, logger=formats.__name__):
        assert default_formats() == ()
        assert default_formats() == ()
    (record,) = [r for r in caplog.records if r.name == formats.__name__]
    assert record.getMessage() == (
        "export.formats is null: exporting the student as nothing; left out: onnx, onnx_int8, "
        "openvino, openvino_int8 (onnx, onnxscript, onnxruntime, openvino, nncf not installed). "
        "pip install 'embedding-distillation[export]' adds them."
    )


def test_every_format_file_follows_the_hub_layout():
    for fmt in FORMATS.values():
        folder = "openvino" if fmt.name.startswith("openvino") else "onnx"
        assert fmt.file.startswith(f"{folder}/"), fmt
        assert fmt.quantized == fmt.name.endswith("_int8")
