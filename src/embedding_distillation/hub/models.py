"""Push a trained sentence-transformers model: safetensors weights and an enriched model card."""

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from embedding_distillation import hub_client
from embedding_distillation.hub.cards import ModelCardInfo, add_distillation_section
from embedding_distillation.hub_client import RetryPolicy, hub_api, with_retries

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

EXPORT_FOLDERS = ("onnx", "openvino")  # where an export folder keeps its formats


@dataclass(frozen=True)
class ModelPush:
    """A request to push ``model`` to ``repo_id`` (``None``: do not push); the token is hidden.

    ``card`` adds the teacher, the data, the training config and the metrics to the model card;
    ``exports`` is an export folder whose ``onnx/`` and ``openvino/`` go into the repo too.
    """

    model: "SentenceTransformer"
    repo_id: str | None
    private: bool = True
    token: str | None = field(default=None, repr=False)
    card: ModelCardInfo | None = None
    exports: Path | None = None


def push_model(
    model: "SentenceTransformer",
    repo_id: str,
    *,
    token: str | None,
    private: bool = True,
    endpoint: str | None = None,
    card: ModelCardInfo | None = None,
    retry: RetryPolicy | None = None,
    exports: Path | None = None,
) -> str:
    """Push ``model`` to the model repo ``repo_id`` (created if missing); return the commit URL.

    The model is saved with safetensors weights and sentence-transformers' model card, to which
    ``card`` adds the teacher, the training data, the training config and the metrics; with
    ``exports`` (an export folder), its ``onnx/`` and ``openvino/`` folders go along, in
    sentence-transformers' Hub layout. The whole folder goes up as one commit, retried on
    transient faults.

    Args:
        model: The trained model.
        repo_id: ``user/name`` of the model repo.
        token: Hub token (``None``: ``HF_TOKEN`` or the stored login); never shown.
        private: Create the repo as private.
        endpoint: Hub URL (``None``: ``HF_ENDPOINT`` or the public Hub).
        card: Distillation details for the model card.
        retry: Retries of transient faults (``None``: ``hub_client.DEFAULT_RETRY``).
        exports: An export folder (``embedding_distillation.export``) whose format folders are
            pushed with the model.

    Raises:
        HubError: The push failed for good, or the token may not write to ``repo_id``.
    """
    api = hub_api(token, endpoint)
    policy = retry or hub_client.DEFAULT_RETRY
    next_step = "The trained model is saved locally; rerun the push (it uploads the whole model)."
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp, model_name=repo_id, create_model_card=True, safe_serialization=True)
        for sub in EXPORT_FOLDERS:
            if exports is not None and (exports / sub).is_dir():
                shutil.copytree(exports / sub, Path(tmp) / sub)
        if card is not None:
            add_distillation_section(Path(tmp) / "README.md", card, token)

        def upload() -> str:
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id, folder_path=tmp, commit_message="Add the distilled student model"
            )
            return str(info.commit_url)  # type: ignore[union-attr]

        url = with_retries(
            upload,
            action="push the model to",
            repo=repo_id,
            policy=policy,
            next_step=next_step,
            token=token,
        )
    logger.info("Pushed the model to %s", repo_id)
    return url


def push_checkpoint(
    folder: str | Path,
    repo_id: str,
    *,
    token: str | None,
    private: bool = True,
    endpoint: str | None = None,
    retry: RetryPolicy | None = None,
) -> str:
    """Upload a training checkpoint folder to ``checkpoints/<folder name>/`` of ``repo_id``.

    The checkpoint holds the weights, the optimizer, scheduler and RNG states, so a run can
    resume from it on another machine (download the folder, then ``resume_from_checkpoint``).

    Raises:
        HubError: The push failed for good, or the token may not write to ``repo_id``.
    """
    api = hub_api(token, endpoint)
    name = Path(folder).name

    def upload() -> str:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            path_in_repo=f"checkpoints/{name}",
            commit_message=f"Add training {name}",
        )
        return str(info.commit_url)  # type: ignore[union-attr]

    url = with_retries(
        upload,
        action=f"push {name} to",
        repo=repo_id,
        policy=retry or hub_client.DEFAULT_RETRY,
        next_step=f"The checkpoint is kept in {folder}; training goes on.",
        token=token,
    )
    logger.info("Pushed %s to %s", name, repo_id)
    return url
