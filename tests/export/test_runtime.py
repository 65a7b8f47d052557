"""The torch-free runtime: tokenization as sentence-transformers does it, rows in input order."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embedding_distillation.export import OnnxEncoder, OpenVinoEncoder, load_encoder
from embedding_distillation.extras import MissingExtraError
from tests.conftest import make_sentences

pytestmark = pytest.mark.slow  # the first test pays for the session's export

TEXTS = ["", "cat", *make_sentences(20, seed=13), " ".join(make_sentences(10, seed=14))]


def test_onnx_encoder_equals_the_student(projected_student, projected_export):
    expected = projected_student.encode(TEXTS, batch_size=4)
    encoder = OnnxEncoder(projected_export, threads=1)
    actual = encoder.encode(TEXTS, batch_size=4)
    assert actual.dtype == np.float32
    assert actual.shape == (len(TEXTS), 48) and encoder.dimension == 48
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_openvino_encoder_equals_the_student(projected_student, projected_export):
    expected = projected_student.encode(TEXTS)
    np.testing.assert_allclose(OpenVinoEncoder(projected_export).encode(TEXTS), expected, atol=1e-5)


def test_rows_keep_input_order_whatever_the_batching(projected_export):
    encoder = OnnxEncoder(projected_export)
    whole = encoder.encode(TEXTS, batch_size=64)
    np.testing.assert_allclose(encoder.encode(TEXTS, batch_size=3), whole, atol=1e-6)
    np.testing.assert_allclose(encoder.encode(TEXTS[::-1], batch_size=5), whole[::-1], atol=1e-6)
    assert encoder.encode([]).shape == (0, 48)


def test_truncation_follows_max_seq_length(projected_student, projected_export):
    encoder = OnnxEncoder(projected_export)
    assert encoder.tokenizer.max_length == projected_student.max_seq_length == 64
    long = " ".join(make_sentences(30, seed=15))
    features = encoder.tokenizer([long, "cat"])
    assert features["input_ids"].shape == (2, 64)
    assert features["attention_mask"][1].sum() == len(
        projected_student.tokenize(["cat"])["input_ids"][0]
    )


def test_int8_exports_stay_close_to_float(projected_export):
    reference = load_encoder(projected_export, "onnx").encode(TEXTS)
    for name in ("onnx_int8", "openvino_int8"):
        int8 = load_encoder(projected_export, name).encode(TEXTS)
        cosines = (reference * int8).sum(1) / np.linalg.norm(int8, axis=1)  # reference is unit
        assert cosines.min() >= 0.99, name


def test_a_missing_model_file_lists_the_ones_there(projected_export):
    with pytest.raises(
        FileNotFoundError,
        match=r"model_fp16.onnx does not exist; model files in .*: \['onnx/model.onnx', 'onnx/model_qint8.onnx', 'openvino/openvino_model.xml', 'openvino/openvino_model_int8.xml'\]. Pass one of them as file=",
    ):
        OnnxEncoder(projected_export, file="onnx/model_fp16.onnx")


def test_a_folder_without_tokenizer_is_refused(tmp_path, projected_export):
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx/model.onnx").write_bytes((projected_export / "onnx/model.onnx").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"No tokenizer.json in .*; pass the export folder"):
        OnnxEncoder(tmp_path)


def test_encode_refuses_a_single_string(projected_export):
    with pytest.raises(TypeError, match=r"encode takes a list of texts, got the string 'cat'"):
        OnnxEncoder(projected_export).encode("cat")


def test_runtime_encodes_where_torch_cannot_be_imported(
    tmp_path, projected_student, projected_export
):
    script = textwrap.dedent(
        f"""
        import sys
        for blocked in ("torch", "sentence_transformers", "transformers"):
            sys.modules[blocked] = None  # importing them now raises ImportError
        import numpy as np
        from embedding_distillation.export import OnnxEncoder, OpenVinoEncoder
        texts = {json.dumps(TEXTS)}
        onnx = OnnxEncoder({str(projected_export)!r}).encode(texts, batch_size=4)
        openvino = OpenVinoEncoder({str(projected_export)!r}).encode(texts, batch_size=4)
        np.save({str(tmp_path / "onnx.npy")!r}, onnx)
        np.save({str(tmp_path / "openvino.npy")!r}, openvino)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sentence_transformers", "transformers") and sys.modules[m] is not None)
        print("loaded:", loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout
    expected = projected_student.encode(TEXTS)
    np.testing.assert_allclose(np.load(tmp_path / "onnx.npy"), expected, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "openvino.npy"), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "runtime"), [("onnx_int8", "onnxruntime"), ("openvino", "openvino")]
)
def test_an_export_needs_its_runtime_from_the_export_extra(
    tmp_path, without_packages, name, runtime
):
    without_packages(runtime)
    with pytest.raises(
        MissingExtraError,
        match=rf"^Running the {name} export needs the export extra \({runtime} is not installed\): "
        r"pip install 'embedding-distillation\[export\]'",
    ):
        load_encoder(tmp_path, name)
