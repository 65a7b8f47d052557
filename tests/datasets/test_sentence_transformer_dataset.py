import numpy as np
import pytest
from kedro.io import DatasetError
from kedro.io.core import Version
from sentence_transformers import SentenceTransformer

from embedding_distillation.datasets import SentenceTransformerModelDataset


def test_versioned_round_trip_gives_the_same_embeddings(tmp_path, student):
    model = SentenceTransformer(student, device="cpu")
    dataset = SentenceTransformerModelDataset(
        filepath=str(tmp_path / "m"), version=Version(None, None)
    )
    assert not dataset.exists()
    dataset.save(model)
    assert dataset.exists()
    loaded = dataset.load()
    np.testing.assert_allclose(loaded.encode(["the cat"]), model.encode(["the cat"]), atol=1e-6)
    versions = dataset.list_versions()
    assert (
        len(versions) == 1
        and (tmp_path / "m").joinpath(versions[0]).joinpath("model.safetensors").exists()
    )
    assert not list((tmp_path / "m").rglob(".*.tmp"))


def test_unversioned_save_replaces_the_folder(tmp_path, student, student_dense):
    dataset = SentenceTransformerModelDataset(filepath=str(tmp_path / "m"))
    dataset.save(SentenceTransformer(student, device="cpu"))
    dataset.save(SentenceTransformer(student_dense, device="cpu"))
    assert dataset.load().get_embedding_dimension() == 40


def test_saving_something_else_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="saves a SentenceTransformer, got dict"):
        SentenceTransformerModelDataset(filepath=str(tmp_path / "m")).save({})
