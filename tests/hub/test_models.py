import numpy as np
import pytest
import yaml
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from embedding_distillation import (
    EmbeddingDistillationTrainer,
    EmbeddingTrainerConfig,
    TeacherEmbeddingsGenerator,
    hub_client,
)
from embedding_distillation.datasets import HubModelDataset
from embedding_distillation.hub import HubError, ModelCardInfo, ModelPush, RetryPolicy, push_model
from tests.hub.conftest import TOKEN

FAST = RetryPolicy(attempts=3, first_wait=0.0, max_wait=0.0)
CARD = ModelCardInfo(
    teacher_model="org/teacher",
    training_data="alice/news-embeddings",
    training_config={"learning_rate": 1e-4, "hub_token": TOKEN, "loss_type": "cosine"},
    metrics={"student_after": {"mean_cosine": 0.91234, "recall_at_10": 0.5}, "curve": [1, 2]},
    report="# Distillation report\n\n**STS-B 82.03 -> 82.41 (+0.38)**\n\n## Details\n",
)


@pytest.fixture
def model(student):
    return SentenceTransformer(student, device="cpu")


def test_push_and_reload(local_hub, model):
    local_hub.fail(r"POST /api/models/.*/commit/", status=502)  # retried
    push_model(model, "alice/student", token=TOKEN, card=CARD, retry=FAST)

    files = local_hub.repo("alice/student", "model").files_at("main")
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files)
    card = files["README.md"].decode()
    header = yaml.safe_load(card.split("---")[1])
    assert header["teacher_model"] == "org/teacher"
    assert header["training_data"] == "alice/news-embeddings"
    assert "embedding-distillation" in header["tags"]
    assert "| student_after.mean_cosine | 0.9123 |" in card
    report = card[card.index("### Report") :]
    assert "**STS-B 82.03 -> 82.41 (+0.38)**" in report
    assert "#### Details" in report and "# Distillation report" not in card
    assert '"learning_rate": 0.0001' in card
    assert TOKEN not in card

    reloaded = SentenceTransformer("alice/student", token=TOKEN, device="cpu")
    texts = ["the cat runs", "a blue river at night"]
    np.testing.assert_allclose(reloaded.encode(texts), model.encode(texts), atol=1e-6)


def test_the_dataset_pushes_to_its_endpoint(local_hub, model, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_ENDPOINT")  # only the dataset's hub_endpoint leads to the local Hub
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    dataset = HubModelDataset(credentials={"token": TOKEN}, hub_endpoint=local_hub.url)
    dataset.save(ModelPush(model=model, repo_id="alice/student", private=False, card=CARD))
    assert local_hub.repo("alice/student", "model").private is False
    assert TOKEN not in str(dataset)


def test_a_repo_of_someone_else_fails_fast(local_hub, model):
    with pytest.raises(
        HubError, match="Cannot push the model to bob/student: the token has no write"
    ):
        push_model(model, "bob/student", token=TOKEN, retry=FAST)
    assert sum("/api/repos/create" in r for r in local_hub.requests) == 1


def _train_and_push(tmp_path, corpus, teacher, student, *, train_args=None, **options) -> dict:
    """Train on 50 encoded rows (4 steps of 16) and push to alice/distilled; fast retries."""
    embeddings = TeacherEmbeddingsGenerator(teacher, device="cpu").generate(
        corpus, output_dir=tmp_path / "emb"
    )
    config = EmbeddingTrainerConfig(
        student_model=student,
        num_epochs=1,
        batch_size=16,
        device="cpu",
        output_dir=str(tmp_path / "out"),
        push_to_hub=True,
        hub_model_id="alice/distilled",
        hub_token=TOKEN,
        **options,
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hub_client, "DEFAULT_RETRY", FAST)
        return EmbeddingDistillationTrainer(config).train(embeddings, **(train_args or {}))


STS_DEV = Dataset.from_dict(
    {
        "sentence1": ["the cat sleeps", "a dog runs", "music book", "rain snow night"],
        "sentence2": ["the cat eats", "red car train", "science data", "sun moon day"],
        "score": [4.5, 0.5, 1.5, 2.5],
    }
)


def _dev_scores(monkeypatch, untrained: float, trained: float) -> None:
    """The API's STS-B dev figures: ``untrained`` for the student it loads, else ``trained``."""
    from embedding_distillation import api

    scores = iter([untrained, trained])  # the untrained student is measured first
    monkeypatch.setattr(api, "sts_dev_spearman", lambda model, pairs, batch: next(scores))


def test_the_api_refuses_to_push_a_regression(
    tmp_path, local_hub, corpus, teacher_plain, student, monkeypatch
):
    _dev_scores(monkeypatch, 82.03, 80.14)
    with pytest.raises(
        ValueError,
        match=r"fell from 82\.03 \(untrained\) to 80\.14 \(-1\.89\).* Set "
        r"EmbeddingTrainerConfig\(allow_regression=True\) to push it anyway\.",
    ):
        _train_and_push(tmp_path, corpus, teacher_plain, student, train_args={"sts_dev": STS_DEV})
    assert ("model", "alice/distilled") not in local_hub.repos
    assert (tmp_path / "out" / "model.safetensors").exists()  # saved all the same


def test_the_api_pushes_a_regression_it_is_allowed_to(
    tmp_path, local_hub, corpus, teacher_plain, student, monkeypatch
):
    _dev_scores(monkeypatch, 82.03, 80.14)
    _train_and_push(
        tmp_path,
        corpus,
        teacher_plain,
        student,
        allow_regression=True,
        train_args={"sts_dev": STS_DEV},
    )
    assert "model.safetensors" in local_hub.repo("alice/distilled", "model").files_at("main")


def _train_pushing_checkpoints(tmp_path, corpus, teacher, student) -> dict:
    """Checkpoints at steps 2 and 4, pushed to alice/distilled."""
    return _train_and_push(tmp_path, corpus, teacher, student, save_steps=2, push_checkpoints=True)


def test_the_trainer_pushes_with_hub_token(tmp_path, local_hub, corpus, teacher_plain, student):
    metrics = _train_and_push(tmp_path, corpus, teacher_plain, student)

    card = local_hub.repo("alice/distilled", "model").files_at("main")["README.md"].decode()
    assert f"| train_loss | {metrics['train_loss']:.4g} |" in card
    assert '"hub_model_id": "alice/distilled"' in card
    assert '"hub_token"' not in card and TOKEN not in card


def test_checkpoints_are_pushed_every_save_steps(
    tmp_path, local_hub, corpus, teacher_plain, student, caplog
):
    local_hub.fail(r"POST /api/models/.*/commit/", status=503, times=1)  # retried
    with caplog.at_level("INFO"):
        _train_pushing_checkpoints(tmp_path, corpus, teacher_plain, student)

    files = local_hub.repo("alice/distilled", "model").files_at("main")
    for step in (2, 4):
        for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
            assert f"checkpoints/checkpoint-{step}/{name}" in files
    assert "model.safetensors" in files  # the final model, at the root
    assert "Pushed checkpoint-2 to alice/distilled" in caplog.text
    assert TOKEN not in caplog.text


def test_a_failed_checkpoint_push_is_logged_and_training_goes_on(
    tmp_path, local_hub, corpus, teacher_plain, student, caplog
):
    local_hub.fail(r"POST /api/models/.*/commit/", status=403, times=2)  # both checkpoints
    metrics = _train_pushing_checkpoints(tmp_path, corpus, teacher_plain, student)

    assert metrics["global_step"] == 4
    assert "Could not push checkpoint-2" in caplog.text
    assert "Could not push checkpoint-4" in caplog.text
    files = local_hub.repo("alice/distilled", "model").files_at("main")
    assert "model.safetensors" in files  # the final push still happened
    assert not any(name.startswith("checkpoints/") for name in files)


def test_push_checkpoints_needs_push_to_hub():
    with pytest.raises(ValueError, match=r"push_checkpoints is true but push_to_hub is false"):
        EmbeddingTrainerConfig(student_model="org/s", push_checkpoints=True)


def test_exports_go_into_the_repo_in_sentence_transformers_layout(local_hub, model, tmp_path):
    exports = tmp_path / "export"
    (exports / "onnx").mkdir(parents=True)
    (exports / "onnx" / "model.onnx").write_bytes(b"graph")
    (exports / "onnx" / "model_qint8.onnx").write_bytes(b"int8 graph")
    (exports / "tokenizer.json").write_text("{}")  # the model's own copy goes up, not this one
    metrics = {
        "onnx": {
            "sts_benchmark": {"spearman": 82.1, "percent_of_student": 100.0},
            "agreement": {"min_cosine": 0.99999912},
            "cost": {"size_mb": 88.04, "texts_per_second": 400.0},
            "verdict": "matches the torch student (agreement gate passed)",
        },
        "onnx_int8": {
            "sts_benchmark": {"spearman": 80.0, "percent_of_student": 97.44},
            "cost": {"size_mb": 32.8, "texts_per_second": 700.0},
            "verdict": "not recommended: keeps 97.4 % of the student's STS-B (below 99 %)",
        },
    }
    card = ModelCardInfo(teacher_model="org/teacher", metrics=metrics)

    push_model(model, "alice/exported", token=TOKEN, card=card, retry=FAST, exports=exports)

    files = local_hub.repo("alice/exported", "model").files_at("main")
    assert files["onnx/model.onnx"] == b"graph"
    assert files["onnx/model_qint8.onnx"] == b"int8 graph"
    assert files["tokenizer.json"] != b"{}"
    text = files["README.md"].decode()
    assert "### Exports" in text
    assert (
        "| ONNX | `onnx/model.onnx` | 88.0 | 400.0 | 82.10 | 100.0 | 0.999999 | matches the torch "
        "student (agreement gate passed) |" in text
    )
    assert (
        "| ONNX int8 | `onnx/model_qint8.onnx` | 32.8 | 700.0 | 80.00 | 97.4 | n/a | not "
        "recommended: keeps 97.4 % of the student's STS-B (below 99 %) |" in text
    )


def test_a_card_without_exports_has_no_exports_section(local_hub, model):
    push_model(model, "alice/plain", token=TOKEN, card=CARD, retry=FAST)
    text = local_hub.repo("alice/plain", "model").files_at("main")["README.md"].decode()
    assert "### Exports" not in text
    assert not any(
        name.startswith("onnx/") for name in local_hub.repo("alice/plain", "model").files_at("main")
    )
