"""Both pipelines through Kedro's SequentialRunner on a DataCatalog of the real datasets."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.text import TextDataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.datasets import (
    EmbeddingShardsDataset,
    HubModelDataset,
    SentenceTransformerModelDataset,
)
from embedding_distillation.pipelines import distillation, teacher_embeddings


def _params(teacher: str, student: str) -> dict:
    return {
        "params:compute": {"device": "cpu", "batch_size": 8},
        "params:teacher_embeddings": {
            "teacher_model": teacher,
            "output_type": "final",
            "chunk_size": 16,
            "max_samples": 40,
        },
        "params:distillation": {
            "student_model": student,
            "num_epochs": 1,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "logging_steps": 1,
            "output_dir": "",
        },
        "params:evaluation": {"heldout_fraction": 0.25, "speed_texts": 8},
    }


def _catalog(root: Path, corpus: Dataset, gold: Dataset | None, params: dict) -> DataCatalog:
    params["params:distillation"]["output_dir"] = str(root / "checkpoints")
    datasets = {
        "corpus": MemoryDataset(corpus, copy_mode="assign"),
        "gold_pairs": MemoryDataset(gold, copy_mode="assign"),
        "teacher_embeddings": EmbeddingShardsDataset(
            filepath=str(root / "teacher_embeddings"), version=Version(None, None)
        ),
        "student_model": SentenceTransformerModelDataset(
            filepath=str(root / "student_model"), version=Version(None, None)
        ),
        "student_model_hub": HubModelDataset(),
        "distillation_metrics": JSONDataset(
            filepath=str(root / "metrics.json"), version=Version(None, None)
        ),
        "distillation_report": TextDataset(
            filepath=str(root / "report.md"), version=Version(None, None)
        ),
        **{
            name: MatplotlibDataset(filepath=str(root / f"{name}.png"), version=Version(None, None))
            for name in ("loss_curve_plot", "cosine_histogram_plot", "quality_speed_plot")
        },
    }
    for name in ("selected_corpus", "train_embeddings", "heldout_embeddings", "training_metrics"):
        datasets[name] = MemoryDataset(copy_mode="assign")
    for name, value in params.items():
        datasets[name] = MemoryDataset(value)
    return DataCatalog(datasets=datasets)


@pytest.fixture
def gold() -> Dataset:
    return Dataset.from_dict(
        {
            "text_1": ["the cat sleeps", "a dog runs", "music book", "rain snow night"],
            "text_2": ["the cat eats", "red car train", "science data", "sun moon day"],
            "score": [0.9, 0.1, 0.3, 0.5],
        }
    )


@pytest.mark.slow
def test_both_pipelines_produce_embeddings_model_and_report(
    tmp_path, corpus, gold, teacher_dense, student
):
    params = _params(teacher_dense, student)
    catalog = _catalog(tmp_path, corpus, gold, params)
    pipeline = teacher_embeddings.create_pipeline() + distillation.create_pipeline()

    SequentialRunner().run(pipeline, catalog)

    embeddings = catalog["teacher_embeddings"].load()
    assert embeddings.num_rows == 40
    assert embeddings["row_id"] == list(range(40))
    teacher = SentenceTransformer(teacher_dense, device="cpu")
    expected = teacher.encode(corpus["text"][:3], convert_to_numpy=True)
    stored = np.asarray(embeddings.with_format("numpy")["teacher_embedding_final"][:3])
    np.testing.assert_allclose(stored, expected, atol=1e-5)

    model = catalog["student_model"].load()
    assert model.get_embedding_dimension() == 40  # projected to the teacher's final size

    metrics = catalog["distillation_metrics"].load()
    assert metrics["heldout_rows"] == 10
    assert 0 < metrics["training"]["train_loss"] < 2
    assert -1 <= metrics["student_after"]["heldout"]["mean_cosine"] <= 1
    assert set(metrics["teacher"]["gold"]) == {"pearson", "spearman"}
    report = catalog["distillation_report"].load()
    assert report.startswith("# Distillation report")
    assert "Student (after)" in report
    assert 0 <= metrics["student_after"]["neighbours"]["recall_at_10"] <= 1
    assert sum(metrics["student_after"]["heldout"]["cosine_histogram"]) == 10
    assert len(metrics["loss_curve"]) == metrics["training"]["global_step"]  # logging_steps=1
    for name in ("loss_curve_plot", "cosine_histogram_plot", "quality_speed_plot"):
        png = next((tmp_path / f"{name}.png").glob("*/*.png"))
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_distillation_reproduces_from_an_older_embeddings_version(
    tmp_path, corpus, teacher_dense, student
):
    """Two encodings of different sizes, then training pinned to the older one."""
    params = _params(teacher_dense, student)
    catalog = _catalog(tmp_path, corpus, None, params)
    SequentialRunner().run(teacher_embeddings.create_pipeline(), catalog)
    params["params:teacher_embeddings"]["max_samples"] = 24
    catalog = _catalog(tmp_path, corpus, None, params)
    SequentialRunner().run(teacher_embeddings.create_pipeline(), catalog)

    versions = catalog["teacher_embeddings"].list_versions(full_path=False)
    assert len(versions) == 2
    older = versions[-1]
    pinned = _catalog(tmp_path, corpus, None, params)
    pinned["teacher_embeddings"] = EmbeddingShardsDataset(
        filepath=str(tmp_path / "teacher_embeddings"), version=Version(older, None)
    )
    SequentialRunner().run(distillation.create_pipeline(), pinned)
    metrics = json.loads(next((tmp_path / "metrics.json").glob("*/metrics.json")).read_text())
    assert metrics["heldout_rows"] == 10  # 25% of the older 40-row version, not of 24 rows
