from types import SimpleNamespace

import pytest
from datasets import Dataset

from embedding_distillation.encoding.provenance import EmbeddingsProvenance
from embedding_distillation.export.formats import StudentExport
from embedding_distillation.pipelines.distillation.nodes import (
    evaluate_student,
    export_student_model,
    push_student_model,
    split_embeddings,
    train_student_model,
    write_report,
)


@pytest.fixture
def embeddings(corpus):
    rows = len(corpus)
    return Dataset.from_dict(
        {
            "row_id": list(range(rows)),
            "text": corpus["text"],
            "teacher_embedding_final": [[float(i % 7)] * 40 for i in range(rows)],
        }
    )


def _provenance(teacher: str, **recorded) -> dict:
    """The provenance split_embeddings passes on, as read from a manifest."""
    values = {
        "teacher_model": teacher,
        "teacher_fingerprint": "f" * 64,
        "output_type": "final",
        "embedding_dtype": "float32",
        "corpus_fingerprint": "c" * 64,
        "columns": {"teacher_embedding_final": 40},
        "num_rows": 50,
        **recorded,
    }
    return EmbeddingsProvenance(**values).to_dict()


def _stored(rows: Dataset, teacher: str = "org/teacher"):
    """Rows as the teacher_embeddings dataset loads them: with their provenance."""
    return SimpleNamespace(
        rows=rows, provenance=EmbeddingsProvenance.from_dict(_provenance(teacher))
    )


STS_PAIRS = Dataset.from_dict(
    {
        "sentence1": ["the cat sleeps", "a dog runs", "music book", "rain snow night"],
        "sentence2": ["the cat eats", "red car train", "science data", "sun moon day"],
        "score": [4.5, 0.5, 1.5, 2.5],
    }
)


NO_EXPORTS = StudentExport(folder=None, formats=())  # type: ignore[arg-type]


def _evaluate(model, heldout, training, params, teacher, sts=None, exports=NO_EXPORTS):
    """The evaluate node on CPU, without gold pairs, timing 4 texts; returns the metrics."""
    metrics, _ = evaluate_student(
        model,
        exports,
        heldout,
        None,
        sts,
        training,
        params,
        _provenance(teacher),
        {"device": "cpu", "batch_size": 8},
        {"speed_texts": 4},
    )
    return metrics


def test_split_embeddings_holds_out_the_fraction(embeddings):
    train, heldout, provenance = split_embeddings(
        _stored(embeddings), {"heldout_fraction": 0.2}, {}
    )
    assert (len(train), len(heldout)) == (40, 10)
    assert provenance == _provenance("org/teacher")  # passed on from the manifest
    assert not set(train["row_id"]) & set(heldout["row_id"])


def test_train_and_evaluate_nodes(tmp_path, embeddings, teacher_dense, student):
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path),
        "loss_type": "cosine",
    }
    heldout = embeddings.select(range(8))
    model, training = train_student_model(embeddings, heldout, STS_PAIRS, params, {"device": "cpu"})
    assert model.get_embedding_dimension() == 40
    assert training["global_step"] == 4
    # Evaluated before the first and after the last step; best by STS-B dev (its pairs given).
    assert [point["step"] for point in training["evaluations"]] == [0, 4]
    assert training["best_metric"] == "sts_dev"
    metrics = _evaluate(model, embeddings.select(range(8)), training, params, teacher_dense)
    assert metrics["heldout_rows"] == 8
    assert "heldout" not in metrics["student_before"]  # 32-d student vs 40-d target
    assert metrics["student_after"]["cost"]["parameters"] > 0
    assert "| Student (after) |" in write_report(metrics)


def test_evaluate_node_compares_a_cut_student_with_its_untrained_cut(embeddings, student):
    from sentence_transformers import SentenceTransformer

    whole = SentenceTransformer(student, device="cpu")
    cut = {"student_model": student, "student_init": [1]}  # 1 of its 2 layers
    metrics = _evaluate(whole, embeddings.select(range(8)), {}, cut, student)
    before = metrics["student_before"]["cost"]["parameters"]
    assert before < metrics["teacher"]["cost"]["parameters"]  # not the whole student_model
    assert before < metrics["student_after"]["cost"]["parameters"]
    assert metrics["student_layers"] == [1]


def test_train_node_takes_precision_from_compute(embeddings, student):
    with pytest.raises(ValueError, match="use_fp16 and compute.use_bf16 are both true"):
        train_student_model(
            embeddings, None, None, {"student_model": student}, {"use_fp16": True, "use_bf16": True}
        )


def test_push_student_model_follows_push_to_hub(student):
    model = object()
    metrics = {"student_after": {"mean_cosine": 0.9}}
    teacher = _provenance("org/teacher", repo_id="alice/emb")
    report = "# Distillation report\n\n**Distillation improved the student: STS-B ...**\n"
    plain = push_student_model(
        model, NO_EXPORTS, metrics, report, {"student_model": student}, teacher, {}
    )
    assert plain.repo_id is None
    request = push_student_model(
        model,
        NO_EXPORTS,
        metrics,
        report,
        {
            "student_model": student,
            "push_to_hub": True,
            "hub_model_id": "alice/s",
        },
        teacher,
        {},
    )
    # No token in the request: student_model_hub takes it from the catalog's credentials.
    assert (request.model, request.repo_id, request.token) == (model, "alice/s", None)
    assert request.card.teacher_model == "org/teacher"
    assert request.card.training_data == "alice/emb"
    assert request.card.metrics == metrics
    assert request.card.report == report  # the card carries the report
    assert request.card.training_config["hub_token"] is None


def test_the_model_card_names_the_local_embeddings_version_without_a_repo(student):
    provenance = _provenance("org/teacher", version="2026-01-01T00.00.00.000Z", corpus="news")
    request = push_student_model(
        object(), NO_EXPORTS, {}, "", {"student_model": student}, provenance, {}
    )
    assert request.card.training_data == (
        "teacher_embeddings version 2026-01-01T00.00.00.000Z (news, 50 rows; local)"
    )


def test_hidden_state_rows_train_and_evaluate_against_the_deepest_mapped_layer(
    tmp_path, corpus, teacher_plain, student
):
    """``output_type: hidden_states`` rows: the hidden-state term alone, then evaluation."""
    from embedding_distillation.api import TeacherEmbeddingsGenerator

    generator = TeacherEmbeddingsGenerator(teacher_plain, device="cpu")
    rows = generator.generate(
        corpus, output_type="hidden_states", layer_indices=[1, 3], output_dir=tmp_path / "e"
    )
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path / "ckpt"),
        "hidden_state_layer_map": {1: 1, 2: 3},
        "hidden_state_weight": 2.0,
        "logging_steps": 1,
    }
    train, heldout, _ = split_embeddings(
        _stored(rows, teacher_plain), {"heldout_fraction": 0.2}, {}
    )
    model, training = train_student_model(train, heldout, None, params, {"device": "cpu"})
    assert model.get_embedding_dimension() == 32  # no projection without an embedding target
    logged = [e for e in training["log_history"] if "loss" in e]
    assert logged and all("hidden_state" in e and "embedding" not in e for e in logged)

    metrics = _evaluate(model, heldout, training, params, teacher_plain)
    assert metrics["target_column"] == "hidden_state_layer_3"
    assert 0 <= metrics["student_after"]["neighbours"]["recall_at_10"] <= 1
    assert "heldout" not in metrics["student_after"]  # 32-d student, 48-d teacher layer


def test_pca_projection_keeps_the_student_comparable_with_the_teacher(
    tmp_path, embeddings, teacher_dense, student
):
    params = {
        "student_model": student,
        "num_epochs": 1,
        "batch_size": 16,
        "output_dir": str(tmp_path),
        "projection": "pca",
    }
    model, training = train_student_model(embeddings, None, None, params, {"device": "cpu"})
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert not any(p.requires_grad for p in model[2].parameters())
    metrics = _evaluate(model, embeddings.select(range(8)), training, params, teacher_dense)
    assert "mse" in metrics["student_after"]["heldout"]  # 40-d output vs 40-d targets


def test_bad_hidden_state_map_stops_the_train_node_before_loading(tmp_path, embeddings):
    with pytest.raises(ValueError, match=r"needs teacher column\(s\) \['hidden_state_layer_4'\]"):
        train_student_model(
            embeddings,
            None,
            None,
            {"student_model": "does/not-exist", "hidden_state_layer_map": {1: 4}},
            {"device": "cpu"},
        )


def test_evaluate_node_measures_the_trained_student_at_the_compute_precision(
    embeddings, student, monkeypatch
):
    """The catalog loads the trained student in float32; under bf16 the teacher and the
    untrained student run in bfloat16, so the trained one must too (same speed and quality
    footing), while the model that is saved and pushed keeps its float32 weights."""
    import torch
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.evaluation import run

    seen = {}

    def spy(models, *args, **kwargs):
        seen.update({name: next(m.encoder.model.parameters()).dtype for name, m in models.items()})
        return {}, []

    monkeypatch.setattr(run, "evaluate_models", spy)
    trained = SentenceTransformer(student, device="cpu")
    evaluate_student(
        trained,
        NO_EXPORTS,
        embeddings.select(range(8)),
        None,
        None,
        {},
        {"student_model": student},
        _provenance(student),
        {"device": "cpu", "use_bf16": True},
        {"speed_texts": 4},
    )
    assert seen == dict.fromkeys(("teacher", "student_before", "student_after"), torch.bfloat16)
    assert next(trained.parameters()).dtype == torch.float32


def test_evaluate_node_scores_every_model_on_the_sts_benchmark(embeddings, teacher_dense, student):
    from sentence_transformers import SentenceTransformer

    trained = SentenceTransformer(student, device="cpu")
    params = {"student_model": student}
    metrics, runs = evaluate_student(
        trained,
        NO_EXPORTS,
        embeddings.select(range(8)),
        None,
        STS_PAIRS,
        {},
        params,
        _provenance(teacher_dense),
        {"device": "cpu", "batch_size": 8},
        {"speed_texts": 4},
    )
    assert metrics["models"] == ["teacher", "student_before", "student_after"]
    for key in metrics["models"]:
        sts = metrics[key]["sts_benchmark"]
        assert -100 <= sts["spearman"] <= 100 and -100 <= sts["pearson"] <= 100
        assert metrics[key]["mteb"]["STSBenchmark"]["metric"] == "cosine_spearman"
    after = metrics["student_after"]["sts_benchmark"]
    teacher = metrics["teacher"]["sts_benchmark"]["spearman"]
    assert after["percent_of_teacher"] == pytest.approx(100 * after["spearman"] / teacher)
    assert [meta.name for meta, _ in runs] == [
        "teacher/model",
        "student_before/model",
        "student_after/model",
    ]
    assert f"the student keeps {after['percent_of_teacher']:.1f} % of it" in write_report(metrics)


def test_missing_sts_pairs_and_retrieval_rows_are_one_log_line_each(embeddings, student, caplog):
    from sentence_transformers import SentenceTransformer

    with caplog.at_level("INFO", logger="embedding_distillation"):
        metrics = _evaluate(
            SentenceTransformer(student, device="cpu"),
            embeddings.select(range(4)),
            {},
            {"student_model": student},
            student,
        )
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "STS Benchmark" in m] == [
        "No STS Benchmark pairs (catalog entry sts_benchmark): the report's STS-B columns are n/a. "
        "`python -m embedding_distillation.demo` fetches them."
    ]
    assert [m for m in messages if "retrieval" in m] == [
        "No retrieval rows (catalog entry retrieval_set): the report's retrieval columns are n/a. "
        "`python -m embedding_distillation.demo` builds them."
    ]
    assert "sts_benchmark" not in metrics["student_after"]
    assert "retrieval" not in metrics["student_after"]
    assert "retrieval_articles" not in metrics


RETRIEVAL_SET = Dataset.from_dict(
    {
        "id": ["0", "1", "2", "3"],
        "title": ["Cat", "Dog", "Rain", "Music"],
        "query": ["small cat", "a dog", "rain and snow", "music"],
        "document": ["the cat sleeps", "a dog runs", "rain snow night", "music book"],
    }
)


def test_evaluate_node_runs_the_retrieval_task_and_caches_the_fixed_models(
    embeddings, teacher_dense, student, student_dense, tmp_path
):
    from sentence_transformers import SentenceTransformer

    cache = tmp_path / "cache"
    evaluation = {"speed_texts": 4, "retrieval_max_articles": 3, "embedding_cache_dir": str(cache)}
    metrics, runs = evaluate_student(
        SentenceTransformer(student_dense, device="cpu"),  # 40-d, as wide as the teacher
        NO_EXPORTS,
        embeddings.select(range(8)),
        None,
        None,
        {},
        {"student_model": student},  # the untrained student: 32-d
        _provenance(teacher_dense),
        {"device": "cpu", "batch_size": 8},
        evaluation,
        RETRIEVAL_SET,
    )
    assert metrics["retrieval_articles"] == 3
    for key in metrics["models"]:
        assert 0 <= metrics[key]["retrieval"]["ndcg_at_10"] <= 100
        assert 0 <= metrics[key]["retrieval"]["recall_at_10"] <= 100
    assert set(metrics["student_after"]["retrieval_teacher_index"]) == {
        "ndcg_at_10",
        "recall_at_10",
        "seconds",
        "percent_of_teacher",
    }
    assert "retrieval_teacher_index" not in metrics["student_before"]
    assert [meta.name for meta, _ in runs] == [
        "teacher/model",
        "student_before/model",
        "student_after/model",
        "student_after+teacher_index/model",
    ]
    # One folder per fixed model (teacher, untrained student), none for the trained one.
    assert len(list(cache.glob("model/*/VitalArticlesRetrieval/document"))) == 2
    assert "teacher-index nDCG@10" in write_report(metrics)


def test_split_node_refuses_an_unknown_mteb_task_before_training(embeddings):
    with pytest.raises(ValueError, match=r"Unknown MTEB task 'STS-Bench'.*Close matches"):
        split_embeddings(_stored(embeddings), {"mteb_tasks": ["STS-Bench"]}, {})


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ({"formats": ["onnx", "tflite"]}, r"Unknown export format\(s\) \['tflite'\]; available"),
        ({"format": ["onnx"]}, r"Unknown key\(s\) \['format'\] in the 'export' parameters"),
    ],
)
def test_split_node_refuses_bad_export_options_before_training(embeddings, export, message):
    with pytest.raises(ValueError, match=message):
        split_embeddings(_stored(embeddings), {}, export)


def test_a_named_format_without_the_export_extra_stops_before_training(
    embeddings, without_packages
):
    without_packages("openvino")
    with pytest.raises(
        ModuleNotFoundError,
        match=r"Export format 'openvino' needs the export extra \(openvino is not installed\): "
        r"pip install 'embedding-distillation\[export\]'",
    ):
        split_embeddings(_stored(embeddings), {}, {"formats": ["openvino"]})


def test_without_the_export_extra_the_default_formats_export_nothing(embeddings, without_packages):
    without_packages("onnx", "onnxscript", "onnxruntime", "openvino", "nncf")
    train, heldout, _ = split_embeddings(_stored(embeddings), {}, {"formats": None})
    assert len(train) + len(heldout) == len(embeddings)
    student = object()  # never touched: there is nothing to export
    exported = export_student_model(student, heldout, {"formats": None}, {"student_model": "s"})
    assert exported.formats == ()
    assert not any(exported.folder.iterdir())


@pytest.mark.slow
def test_export_then_evaluate_measures_each_export_against_the_student(
    tmp_path, embeddings, teacher_dense, student
):
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.datasets import StudentExportDataset

    trained = SentenceTransformer(student, device="cpu")
    heldout = embeddings.select(range(8))
    exported = export_student_model(
        trained, heldout, {"formats": ["onnx", "onnx_int8"]}, {"student_model": student}
    )
    assert exported.formats == ("onnx", "onnx_int8")
    assert not (exported.folder / "model.safetensors").exists()  # the torch folder is elsewhere
    dataset = StudentExportDataset(filepath=str(tmp_path / "exports"))
    dataset.save(exported)
    stored = dataset.load()
    assert stored.formats == ("onnx", "onnx_int8") and (stored.folder / "onnx/model.onnx").exists()

    metrics = _evaluate(
        trained, heldout, {}, {"student_model": student}, teacher_dense, STS_PAIRS, stored
    )

    assert metrics["models"][-2:] == ["onnx", "onnx_int8"]
    assert metrics["onnx"]["agreement"]["min_cosine"] > 0.9999
    assert metrics["onnx"]["sts_benchmark"]["percent_of_student"] == pytest.approx(100, abs=0.01)
    assert metrics["onnx"]["recommended"] is True
    assert metrics["onnx_int8"]["recommended"] in (True, False)
    assert metrics["onnx_int8"]["cost"]["size_mb"] < metrics["onnx"]["cost"]["size_mb"]
    report = write_report(metrics)
    assert "| ONNX int8 |" in report and "Exports (run with" in report


def test_no_export_formats_export_nothing(tmp_path, embeddings, student):
    from sentence_transformers import SentenceTransformer

    from embedding_distillation.datasets import StudentExportDataset

    trained = SentenceTransformer(student, device="cpu")
    exported = export_student_model(
        trained, embeddings.select(range(4)), {"formats": []}, {"student_model": student}
    )
    assert exported.formats == ()
    dataset = StudentExportDataset(filepath=str(tmp_path / "exports"))
    dataset.save(exported)
    assert dataset.load().formats == ()
