"""export_student: the Hub layout, atomic writes, the gate at export time, static students."""

import json
import shutil

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import BoW, Normalize, StaticEmbedding
from tokenizers import Tokenizer

from embedding_distillation.export import AgreementError, ExportError, student_export
from embedding_distillation.export.student_export import export_student
from tests.export.conftest import projected

pytestmark = pytest.mark.slow  # the first test pays for the session's export


def test_returns_each_format_file_in_the_hub_layout(projected_export):
    found = sorted(
        p.relative_to(projected_export).as_posix()
        for p in projected_export.rglob("*")
        if p.is_file()
    )
    for name in (
        "onnx/model.onnx",
        "onnx/model_qint8.onnx",
        "openvino/openvino_model.xml",
        "openvino/openvino_model.bin",
        "openvino/openvino_model_int8.xml",
        "openvino/openvino_model_int8.bin",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
        "config.json",
        "model.safetensors",
        "1_Pooling/config.json",
        "2_Dense/model.safetensors",
        "3_Dense/model.safetensors",
        "4_Normalize/config.json",
    ):
        assert name in found, name
    assert not [
        p for p in projected_export.parent.iterdir() if p.name.startswith(".")
    ]  # no leftovers


def test_the_folder_is_also_the_torch_student(projected_student, projected_export):
    reloaded = SentenceTransformer(str(projected_export), device="cpu")
    np.testing.assert_allclose(
        reloaded.encode(["a cat"]), projected_student.encode(["a cat"]), atol=1e-6
    )


def test_without_torch_weights_and_without_intermediates(mpnet_export):
    names = {p.relative_to(mpnet_export).as_posix() for p in mpnet_export.rglob("*") if p.is_file()}
    assert {"onnx/model.onnx", "openvino/openvino_model_int8.xml", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith(".safetensors")]
    # the float32 IR was only a step towards the int8 one
    assert "openvino/openvino_model.xml" not in names and "openvino/openvino_model.bin" not in names


def test_no_formats_writes_nothing(tmp_path, projected_student):
    assert export_student(projected_student, tmp_path / "export", []) == {}
    assert not (tmp_path / "export").exists()


def test_a_static_student_is_saved_as_it_is(tmp_path, student, caplog):
    tokenizer = Tokenizer.from_file(f"{student}/tokenizer.json")
    model = SentenceTransformer(
        modules=[StaticEmbedding(tokenizer, embedding_dim=8), Normalize()], device="cpu"
    )
    with caplog.at_level("INFO", logger=student_export.__name__):
        assert export_student(model, tmp_path / "export", ["onnx", "onnx_int8"]) == {}
    assert (
        "static-embedding model" in caplog.text
        and "no ONNX/OpenVINO format is written" in caplog.text
    )
    reloaded = SentenceTransformer(str(tmp_path / "export"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(["a cat"]), model.encode(["a cat"]), atol=1e-6)
    assert not (tmp_path / "export" / "onnx").exists()


def test_a_student_without_transformer_is_refused_before_any_work(tmp_path):
    model = SentenceTransformer(modules=[BoW(vocab=["cat", "dog"])], device="cpu")
    with pytest.raises(
        ExportError,
        match=r"module 0 \(BoW\) is not a Hugging Face Transformer module.* set the export formats to \[\]",
    ):
        export_student(model, tmp_path / "export", ["onnx"])
    assert list(tmp_path.iterdir()) == []


def test_a_disagreeing_export_is_not_written_and_the_old_one_stays(
    tmp_path, student_dense, projected_export, monkeypatch
):
    """Another student of the same shape given the first one's graph: the gate must stop it."""
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "previous.txt").write_text("the last good export")

    def wrong_graph(model, path):
        path.parent.mkdir(parents=True)
        shutil.copy(projected_export / "onnx/model.onnx", path)

    monkeypatch.setattr(student_export, "export_onnx", wrong_graph)
    other = projected(student_dense, seed=7)
    with pytest.raises(
        AgreementError,
        match=r"The onnx export disagrees with the torch student: min cosine -?\d\.\d+ is below the threshold 0.9999 .* worst on text #\d+",
    ):
        export_student(other, folder, ["onnx"])
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert [p.name for p in folder.iterdir()] == ["previous.txt"]


def test_an_export_replaces_the_previous_one(
    tmp_path, projected_export, projected_student, monkeypatch
):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "stale.txt").write_text("old")

    def same_graph(model, path):
        path.parent.mkdir(parents=True)
        shutil.copy(projected_export / "onnx/model.onnx", path)

    monkeypatch.setattr(student_export, "export_onnx", same_graph)
    files = export_student(projected_student, folder, ["onnx_int8"], torch_weights=False)
    assert files == {"onnx_int8": folder / "onnx/model_qint8.onnx"}
    assert not (folder / "stale.txt").exists() and not (folder / "onnx/model.onnx").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    assert json.loads((folder / "modules.json").read_text())[0]["path"] == ""


def test_a_format_that_fails_is_named(tmp_path, projected_export, projected_student, monkeypatch):
    def same_graph(model, path):
        path.parent.mkdir(parents=True)
        shutil.copy(projected_export / "onnx/model.onnx", path)

    def broken(*args):
        raise RuntimeError("nncf could not compress")

    monkeypatch.setattr(student_export, "export_onnx", same_graph)
    monkeypatch.setattr(student_export, "compress_openvino", broken)
    with pytest.raises(
        ExportError,
        match=r"Could not write the openvino_int8 export \(the OpenVINO IR with int8 weights .*\): RuntimeError: nncf could not compress\. The trained model is kept; drop 'openvino_int8'",
    ):
        export_student(projected_student, tmp_path / "export", ["onnx", "openvino_int8"])
    assert list(tmp_path.iterdir()) == []
