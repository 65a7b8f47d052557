"""MtebResultsDataset: mteb's result layout, readable by mteb's own ResultCache, versioned."""

import numpy as np
import pytest
from datasets import Dataset
from kedro.io.core import DatasetError, Version

from embedding_distillation.datasets import MtebResultsDataset
from embedding_distillation.evaluation.encoders import EvaluatedModel
from embedding_distillation.evaluation.mteb_tasks import local_sts_benchmark, run_tasks


class Constant:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def encode(self, texts, batch_size=32):
        return self.rng.standard_normal((len(texts), 4)).astype(np.float32)


@pytest.fixture(scope="module")
def runs():
    pairs = Dataset.from_dict(
        {"sentence1": list("abcdef"), "sentence2": list("ghijkl"), "score": [0, 1, 2, 3, 4, 5]}
    )
    task = local_sts_benchmark(pairs)
    found = []
    for role, seed in (("teacher", 0), ("student_after", 1)):
        model = EvaluatedModel(encoder=Constant(seed), source="m", revision=f"rev{seed}")
        found += run_tasks(model, role, [task], batch_size=4)
    return found


def test_save_writes_mtebs_layout_and_mteb_reads_it_back(tmp_path, runs):
    import mteb

    dataset = MtebResultsDataset(filepath=str(tmp_path / "mteb"), version=Version(None, None))
    dataset.save(runs)

    folder = next((tmp_path / "mteb").glob("*/mteb"))
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json"))
    assert files == [
        "results/student_after__m/rev1/STSBenchmark.json",
        "results/student_after__m/rev1/model_meta.json",
        "results/teacher__m/rev0/STSBenchmark.json",
        "results/teacher__m/rev0/model_meta.json",
    ]
    loaded = mteb.ResultCache(cache_path=folder).load_results(include_remote=False)
    scores = {r.model_name: r.task_results[0].get_score() for r in loaded.model_results}
    expected = {meta.name: result.get_score() for meta, result in runs}
    assert scores == pytest.approx(expected, abs=1e-6)  # mteb stores six decimals
    assert dataset.load().model_results  # the dataset's own load is the same call
    assert dataset.exists()


def test_versions_keep_earlier_results(tmp_path, runs):
    first = MtebResultsDataset(
        filepath=str(tmp_path / "m"), version=Version(None, "2026-01-01T00.00.00.000Z")
    )
    first.save(runs[:1])
    second = MtebResultsDataset(
        filepath=str(tmp_path / "m"), version=Version(None, "2026-01-02T00.00.00.000Z")
    )
    second.save([])
    assert len(list((tmp_path / "m").iterdir())) == 2
    latest = MtebResultsDataset(filepath=str(tmp_path / "m"), version=Version(None, None))
    assert latest.load().model_results == []  # the newest version holds no results
    assert not list((tmp_path / "m").glob("*/.m.tmp"))


def test_a_missing_version_does_not_exist(tmp_path):
    dataset = MtebResultsDataset(filepath=str(tmp_path / "none"), version=Version(None, None))
    assert not dataset.exists()
    with pytest.raises(DatasetError):
        dataset.load()
    assert "token" not in str(dataset._describe())
