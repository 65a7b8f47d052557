import numpy as np
import pytest
import yaml
from sentence_transformers import SentenceTransformer

from embedding_distillation import (
    EmbeddingDistillationTrainer,
    EmbeddingTrainerConfig,
    TeacherEmbeddingsGenerator,
)
from embedding_distillation.datasets import HubModelDataset, ModelPush
from embedding_distillation.hub import HubError, ModelCardInfo, RetryPolicy, push_model
from tests.hub.conftest import TOKEN

FAST = RetryPolicy(attempts=3, first_wait=0.0, max_wait=0.0)
CARD = ModelCardInfo(
    teacher_model="org/teacher",
    training_data="alice/news-embeddings",
    training_config={"learning_rate": 1e-4, "hub_token": TOKEN, "loss_type": "cosine"},
    metrics={"student_after": {"mean_cosine": 0.91234, "recall_at_10": 0.5}, "curve": [1, 2]},
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


def test_the_trainer_pushes_with_hub_token(tmp_path, local_hub, corpus, teacher_plain, student):
    embeddings = TeacherEmbeddingsGenerator(teacher_plain, device="cpu").generate(
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
    )
    metrics = EmbeddingDistillationTrainer(config).train(embeddings)

    card = local_hub.repo("alice/distilled", "model").files_at("main")["README.md"].decode()
    assert f"| train_loss | {metrics['train_loss']:.4g} |" in card
    assert '"hub_model_id": "alice/distilled"' in card
    assert '"hub_token"' not in card and TOKEN not in card
