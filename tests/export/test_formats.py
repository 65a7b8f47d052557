import importlib.util

import pytest

from embedding_distillation.export import formats
from embedding_distillation.export.formats import FORMATS, check_formats, default_formats


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


def _without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        formats.importlib.util, "find_spec", lambda name: None if name in missing else real(name)
    )


def test_missing_package_names_what_to_install(monkeypatch):
    _without(monkeypatch, "nncf")
    check_formats(["onnx", "openvino"])  # these need no nncf
    with pytest.raises(
        ModuleNotFoundError,
        match=r"'openvino_int8' .* needs the package\(s\) nncf, which are not installed here: run `pip install openvino nncf`",
    ):
        check_formats(["onnx", "openvino_int8"])


def test_default_formats_add_openvino_only_where_installed(monkeypatch):
    assert default_formats() == ("onnx", "onnx_int8", "openvino", "openvino_int8")
    _without(monkeypatch, "nncf")
    assert default_formats() == ("onnx", "onnx_int8", "openvino")
    _without(monkeypatch, "openvino", "nncf")
    assert default_formats() == ("onnx", "onnx_int8")


def test_every_format_file_follows_the_hub_layout():
    for fmt in FORMATS.values():
        folder = "openvino" if fmt.name.startswith("openvino") else "onnx"
        assert fmt.file.startswith(f"{folder}/"), fmt
        assert fmt.quantized == fmt.name.endswith("_int8")
