"""Both pipelines through Kedro's SequentialRunner on a DataCatalog of the real datasets."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from kedro.framework.hooks import hook_impl
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import Version, generate_timestamp
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.text import TextDataset
from sentence_transformers import SentenceTransformer

from embedding_distillation.datasets import (
    EmbeddingShardsDataset,
    EmbeddingsWriterDataset,
    HubEmbeddingsDataset,
    MtebResultsDataset,
    SentenceTransformerModelDataset,
    StudentExportDataset,
)
from embedding_distillation.encoding.engine import ShardEncoder
from embedding_distillation.hub import HubCredentials
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
        "params:export": {"formats": ["onnx", "onnx_int8"]},
    }


STS_PAIRS = Dataset.from_dict(
    {
        "sentence1": ["the cat sleeps", "a dog runs", "music book", "rain snow night", "sun"],
        "sentence2": ["the cat eats", "red car train", "science data", "sun moon day", "moon"],
        "score": [4.5, 0.5, 1.5, 2.5, 3.5],
    }
)


RETRIEVAL_SET = Dataset.from_dict(
    {
        "id": ["0", "1", "2", "3"],
        "title": ["Cat", "Dog", "Rain", "Music"],
        "query": ["small cat", "a dog", "rain and snow", "music"],
        "document": ["the cat sleeps", "a dog runs", "rain snow night", "music book"],
    }
)


def _catalog(
    root: Path,
    corpus: Dataset,
    gold: Dataset | None,
    params: dict,
    sts: Dataset | None = None,
    *,
    embeddings_version: str | None = None,
    retrieval: Dataset | None = None,
) -> DataCatalog:
    """The project's datasets under ``root``; every versioned one saves this run's version."""
    params["params:distillation"]["output_dir"] = str(root / "checkpoints")
    run = generate_timestamp()

    def version(load: str | None = None) -> Version:
        return Version(load, run)

    datasets = {
        "corpus": MemoryDataset(corpus, copy_mode="assign"),
        "gold_pairs": MemoryDataset(gold, copy_mode="assign"),
        "sts_benchmark": MemoryDataset(sts, copy_mode="assign"),
        "retrieval_set": MemoryDataset(retrieval, copy_mode="assign"),
        "sts_benchmark_dev": MemoryDataset(None, copy_mode="assign"),  # the train node's input
        "mteb_results": MtebResultsDataset(filepath=str(root / "mteb"), version=version()),
        "teacher_embeddings": EmbeddingShardsDataset(
            filepath=str(root / "teacher_embeddings"), version=version(embeddings_version)
        ),
        "teacher_embeddings_writer": EmbeddingsWriterDataset(
            filepath=str(root / "teacher_embeddings"), version=version()
        ),
        "teacher_embeddings_hub": HubEmbeddingsDataset(),
        "teacher_embeddings_provenance": JSONDataset(
            filepath=str(root / "provenance.json"), version=version()
        ),
        "training_metrics": JSONDataset(
            filepath=str(root / "training_metrics.json"), version=version()
        ),
        "student_model": SentenceTransformerModelDataset(
            filepath=str(root / "student_model"), version=version()
        ),
        "student_exports": StudentExportDataset(filepath=str(root / "exports"), version=version()),
        "student_model_hub": MemoryDataset(copy_mode="assign"),  # the push request, for tests
        "hub_credentials": MemoryDataset(HubCredentials(), copy_mode="assign"),
        "distillation_metrics": JSONDataset(filepath=str(root / "metrics.json"), version=version()),
        "distillation_report": TextDataset(filepath=str(root / "report.md"), version=version()),
        **{
            name: MatplotlibDataset(filepath=str(root / f"{name}.png"), version=version())
            for name in ("training_curves_plot", "cosine_histogram_plot", "quality_speed_plot")
        },
    }
    for name in ("selected_corpus", "train_embeddings", "heldout_embeddings"):
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
    catalog = _catalog(tmp_path, corpus, gold, params, STS_PAIRS, retrieval=RETRIEVAL_SET)
    pipeline = teacher_embeddings.create_pipeline() + distillation.create_pipeline()

    SequentialRunner().run(pipeline, catalog)

    embeddings = catalog["teacher_embeddings"].load().rows
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
    assert set(metrics["student_after"]["sts_benchmark"]) == {
        "spearman",
        "pearson",
        "percent_of_teacher",
    }
    assert metrics["retrieval_articles"] == 4
    for key in ("student_after", "onnx", "onnx_int8"):  # 40-d, as wide as the teacher
        assert 0 <= metrics[key]["retrieval_teacher_index"]["ndcg_at_10"] <= 100
    assert "retrieval_teacher_index" not in metrics["student_before"]  # 32-d
    results = catalog["mteb_results"].load()
    assert sorted(r.model_name for r in results.model_results) == [
        "onnx+teacher_index/model",
        "onnx/model",
        "onnx_int8+teacher_index/model",
        "onnx_int8/model",
        "student_after+teacher_index/model",
        "student_after/model",
        "student_before/model",
        "teacher/model",
    ]
    report = catalog["distillation_report"].load()
    share = metrics["student_after"]["sts_benchmark"]["percent_of_teacher"]
    assert f"the student keeps {share:.1f} % of it" in report
    evaluations = metrics["training"]["evaluations"]  # tracked while training, step 0 first
    assert evaluations[0]["step"] == 0
    assert evaluations[-1]["step"] == metrics["training"]["global_step"]
    assert metrics["training"]["best_metric"] == "heldout_cosine"  # no STS-B dev pairs here
    exports = catalog["student_exports"].load()
    assert exports.formats == ("onnx", "onnx_int8")
    assert metrics["models"][-2:] == ["onnx", "onnx_int8"]
    assert metrics["onnx"]["agreement"]["min_cosine"] >= 0.9999
    push = catalog["student_model_hub"].load()
    assert push.exports == exports.folder  # the stored version, pushed with the model
    assert report.startswith("# Distillation report")
    assert "Student (after)" in report
    assert 0 <= metrics["student_after"]["neighbours"]["recall_at_10"] <= 1
    assert sum(metrics["student_after"]["heldout"]["cosine_histogram"]) == 10
    assert len(metrics["loss_curve"]) == metrics["training"]["global_step"]  # logging_steps=1
    for name in ("training_curves_plot", "cosine_histogram_plot", "quality_speed_plot"):
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
    pinned = _catalog(tmp_path, corpus, None, params, embeddings_version=older)
    SequentialRunner().run(distillation.create_pipeline(), pinned)
    metrics = json.loads(next((tmp_path / "metrics.json").glob("*/metrics.json")).read_text())
    assert metrics["heldout_rows"] == 10  # 25% of the older 40-row version, not of 24 rows


@pytest.mark.slow
def test_distillation_takes_the_teacher_from_the_embeddings_not_the_parameters(
    tmp_path, corpus, teacher_dense, teacher_plain, student
):
    """Encode with teacher A, then with B; distil A's version with B in the parameters."""
    params = _params(teacher_dense, student)  # teacher A
    SequentialRunner().run(
        teacher_embeddings.create_pipeline(), _catalog(tmp_path, corpus, None, params)
    )
    (version_a,) = EmbeddingShardsDataset(
        filepath=str(tmp_path / "teacher_embeddings"), version=Version(None, None)
    ).list_versions(full_path=False)
    params["params:teacher_embeddings"]["teacher_model"] = teacher_plain  # teacher B
    SequentialRunner().run(
        teacher_embeddings.create_pipeline(), _catalog(tmp_path, corpus, None, params)
    )

    pinned = _catalog(tmp_path, corpus, None, params, embeddings_version=version_a)
    SequentialRunner().run(distillation.create_pipeline(), pinned)

    metrics = pinned["distillation_metrics"].load()
    assert metrics["teacher_model"] == teacher_dense
    teacher_a = SentenceTransformer(teacher_dense, device="cpu")
    scored = metrics["teacher"]["cost"]["parameters"]
    assert scored == sum(p.numel() for p in teacher_a.parameters())  # A was scored, not B
    assert teacher_dense in pinned["distillation_report"].load()
    assert teacher_plain not in pinned["distillation_report"].load()
    card = pinned["student_model_hub"].load().card
    assert card.teacher_model == teacher_dense
    # The in-memory corpus has no name: it is named after its fingerprint (corpus_name).
    assert re.fullmatch(
        rf"teacher_embeddings version {re.escape(version_a)} \(dataset-[0-9a-f]{{8}}, 40 rows; "
        r"local\)",
        card.training_data,
    )
    provenance = pinned["teacher_embeddings_provenance"].load()
    assert (provenance["version"], provenance["output_type"]) == (version_a, "final")


class RecordingHook:
    """Records what ``on_node_error`` saw."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, BaseException]] = []

    @hook_impl
    def on_node_error(self, error, node, catalog, inputs, is_async, run_id):
        self.errors.append((node.name, error))


def _fail_while_encoding(monkeypatch):
    def out_of_memory(self, shard):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(ShardEncoder, "encode_shard", out_of_memory)


@pytest.mark.parametrize(
    ("params", "prepare", "error", "message"),
    [
        (
            {"teacher_model": "./no/such/teacher"},
            None,
            FileNotFoundError,
            r"^teacher_model path '\./no/such/teacher' does not exist",
        ),
        (
            {},
            lambda monkeypatch: monkeypatch.setattr(torch.cuda, "is_available", lambda: False),
            RuntimeError,
            r"^compute\.device is 'cuda' but torch sees no CUDA device",
        ),
        ({}, _fail_while_encoding, torch.OutOfMemoryError, r"^CUDA out of memory"),
        (
            {"invalid_texts": "fail"},
            None,
            ValueError,
            r"^1 of 40 texts in column 'text' are None, empty or not strings \(row 4: ''\)",
        ),
    ],
    ids=["missing teacher", "cuda on a CPU machine", "out of memory", "invalid text"],
)
def test_encoding_failures_are_failures_of_the_encode_node(
    tmp_path, corpus, teacher_dense, student, monkeypatch, params, prepare, error, message
):
    texts = list(corpus["text"])
    texts[4] = ""
    pipeline_params = _params(teacher_dense, student)
    pipeline_params["params:teacher_embeddings"].update(params)
    if error is RuntimeError:
        pipeline_params["params:compute"]["device"] = "cuda"
    catalog = _catalog(
        tmp_path, Dataset.from_dict({"text": texts, "source": ["x"] * 50}), None, pipeline_params
    )
    if prepare is not None:
        prepare(monkeypatch)
    hook = RecordingHook()
    hooks = _create_hook_manager()
    hooks.register(hook)

    with pytest.raises(error, match=message):
        SequentialRunner().run(teacher_embeddings.create_pipeline(), catalog, hook_manager=hooks)

    assert [(name, type(e)) for name, e in hook.errors] == [("encode_corpus", error)]
