"""Several processes: the torchrun helpers, the Kedro hook, and 2-process runs on CPU (Gloo).

The slow tests launch ``python -m torch.distributed.run --nproc_per_node=2`` (torchrun) and
compare what two processes wrote with a single-process run of the same job.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
from datasets import Dataset
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro_datasets.json import JSONDataset

from embedding_distillation import distributed
from embedding_distillation.compute import ComputeConfig
from embedding_distillation.datasets import EmbeddingShardsDataset
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import prepare_encoding, run_encoding
from embedding_distillation.encoding.shards import ShardStore
from embedding_distillation.hooks import DistributedHook
from tests.conftest import make_project_copy
from tests.hub.conftest import TOKEN, local_hub  # noqa: F401  (a local Hub server)
from tests.spies import Crash, crash_at

EMBEDDINGS = ("teacher_embedding_final", "teacher_embedding_pre_dense")
TORCHRUN_TIMEOUT = 300


@pytest.fixture
def single_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _as_rank(monkeypatch, rank, world=2):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_RANK", str(rank))


def test_one_process_needs_no_process_group(single_process):
    distributed.init("cpu")
    assert not dist.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main() and distributed.describe() == ""
    distributed.barrier()
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_gather_object(3) == [3]
    assert distributed.on_main(lambda: "done") == "done"


def test_rank_and_world_come_from_the_torchrun_environment(monkeypatch):
    _as_rank(monkeypatch, 1)
    assert distributed.rank() == 1 and distributed.world_size() == 2
    assert distributed.local_rank() == 1
    assert not distributed.is_main()
    assert distributed.describe() == " (rank 1 of 2)"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "two"}, r"WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK=2 is outside 0\.\.1 \(WORLD_SIZE=2\)"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be at least 1, got 0"),
    ],
)
def test_a_bad_torchrun_environment_is_named(single_process, monkeypatch, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        distributed.rank()


def test_collectives_before_init_say_to_call_init(monkeypatch):
    _as_rank(monkeypatch, 0)
    with pytest.raises(RuntimeError, match=r"WORLD_SIZE=2 but the process group is not"):
        distributed.barrier()


def _hook_catalog(tmp_path):
    catalog = DataCatalog(
        {
            "corpus": MemoryDataset([1, 2]),
            "teacher_embeddings": EmbeddingShardsDataset(filepath=str(tmp_path / "emb")),
            "metrics": JSONDataset(filepath=str(tmp_path / "metrics.json")),
        }
    )
    pipeline = Pipeline(
        [
            Node(lambda c: c, "corpus", "teacher_embeddings", name="encode"),
            Node(lambda e: e, "teacher_embeddings", "metrics", name="evaluate"),
            Node(lambda m: m, "metrics", "free_output", name="report"),
        ]
    )
    return catalog, pipeline


@pytest.mark.parametrize(("rank", "in_memory"), [(0, False), (1, True)])
def test_the_hook_keeps_outputs_in_memory_on_ranks_other_than_0(
    tmp_path, monkeypatch, caplog, rank, in_memory
):
    _as_rank(monkeypatch, rank)
    catalog, pipeline = _hook_catalog(tmp_path)
    with caplog.at_level("WARNING"):
        DistributedHook().before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    assert "Replacing dataset" not in caplog.text  # Kedro's warning for each swap is dropped
    assert isinstance(catalog["metrics"], MemoryDataset) is in_memory
    # Encoding is shared by all ranks; inputs still load from where they are.
    assert isinstance(catalog["teacher_embeddings"], EmbeddingShardsDataset)
    assert catalog.load("corpus") == [1, 2]
    catalog.save("metrics", {"loss": 1.0})
    assert (tmp_path / "metrics.json").exists() is not in_memory


# --- two processes (torchrun, Gloo on CPU) -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 <args>`` on CPU; fails the test with both ranks' output."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "KEDRO_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path]),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        *args,
    ]
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TORCHRUN_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return result


def _arrays(dataset, column):
    return np.asarray(dataset.with_format("numpy")[column])


def _assert_same_rows(actual: Dataset, expected: Dataset) -> None:
    assert actual["row_id"] == expected["row_id"]
    assert actual["text"] == expected["text"]
    for column in EMBEDDINGS:
        np.testing.assert_allclose(
            _arrays(actual, column), _arrays(expected, column), rtol=0, atol=1e-6
        )


def _manifest_without_timings(folder: Path) -> dict:
    """The manifest but for timings and provenance (the reference run names its corpus apart)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("seconds", "texts_per_second", "tokens_per_second", "provenance"):
        manifest.pop(key)
    return manifest


API_WORKER = textwrap.dedent(
    """
    import json, logging, sys
    import pytest
    from pathlib import Path
    from datasets import Dataset
    from embedding_distillation import EmbeddingDistillationTrainer, EmbeddingTrainerConfig
    from embedding_distillation import TeacherEmbeddingsGenerator, distributed
    from tests.spies import record_encoded

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    teacher, student, texts_file, corpus_file, out, rank0_token, other_token = sys.argv[1:8]
    out = Path(out)
    texts = Path(texts_file).read_text().splitlines()
    encoded = record_encoded(pytest.MonkeyPatch())  # shards this rank encodes

    generator = TeacherEmbeddingsGenerator(teacher, device="cpu", batch_size=4, chunk_size=8)
    corpus = Dataset.from_dict({"text": texts})
    # Only rank 0 may talk to the Hub: the other ranks hold a token the Hub refuses.
    token = rank0_token if distributed.is_main() else other_token
    fresh = generator.generate_and_push(
        corpus, repo_id="alice/emb", push_every=16, token=token, output_dir=out / "fresh"
    )
    fresh_shards = list(encoded)
    encoded.clear()
    generator.generate(corpus, output_dir=out / "resumed")
    config = EmbeddingTrainerConfig(
        student_model=student, num_epochs=1, batch_size=4, learning_rate=1e-3,
        logging_steps=1, device="cpu", output_dir=str(out / "model"),
    )
    metrics = EmbeddingDistillationTrainer(config).train(str(out / "fresh"))
    resumed_shards = list(encoded)
    encoded.clear()
    streamed = generator.generate(corpus_file, output_dir=out / "streamed", streaming=True)
    report = {
        "fresh_rows": fresh.num_rows, "fresh_shards": fresh_shards, "resumed_shards": resumed_shards,
        "streamed_rows": streamed.num_rows, "streamed_shards": encoded,
        "world_size": metrics["world_size"], "global_step": metrics["global_step"],
        "losses": [e["loss"] for e in metrics["log_history"] if "loss" in e],
    }
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps(report))
    """
)


@pytest.mark.slow
def test_api_encodes_streams_pushes_and_trains_on_two_processes(
    tmp_path,
    corpus,
    teacher_dense,
    student,
    monkeypatch,
    local_hub,  # noqa: F811
):
    config = EncodingConfig(teacher_model=teacher_dense, chunk_size=8)
    cpu = ComputeConfig(device="cpu", batch_size=4)
    reference = run_encoding(prepare_encoding(corpus, config, cpu), ShardStore(tmp_path / "ref"))
    # A single-process run killed in its fourth shard: two processes must finish it.
    job = prepare_encoding(corpus, config, cpu)
    crash_at(monkeypatch, job, 3)
    with pytest.raises(Crash):
        run_encoding(job, ShardStore(tmp_path / "out" / "resumed"))

    (tmp_path / "worker.py").write_text(API_WORKER)
    (tmp_path / "texts.txt").write_text("\n".join(corpus["text"]) + "\n")
    corpus.to_parquet(str(tmp_path / "news.parquet"))
    result = _torchrun(  # one launch for every API path: each costs two imports of torch
        str(tmp_path / "worker.py"),
        teacher_dense,
        student,
        str(tmp_path / "texts.txt"),
        str(tmp_path / "news.parquet"),
        str(tmp_path / "out"),
        TOKEN,
        "hf_not_a_valid_token",
        cwd=tmp_path,
    )
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]

    # Encoding: the 7 shards were split between the ranks, and the folder equals a 1-process run.
    assert sorted(ranks[0]["fresh_shards"] + ranks[1]["fresh_shards"]) == list(range(7))
    assert ranks[0]["fresh_shards"] and ranks[1]["fresh_shards"]
    assert ranks[0]["fresh_rows"] == ranks[1]["fresh_rows"] == 50
    for name in ("fresh", "resumed"):
        folder = tmp_path / "out" / name
        _assert_same_rows(ShardStore(folder).load(), reference.load())
        assert _manifest_without_timings(folder) == _manifest_without_timings(reference.folder)
        assert sorted(  # the writer's lock file stays: removing it would race the next writer
            p.name for p in folder.rglob("*") if p.name != ".writer.lock"
        ) == sorted(p.name for p in reference.folder.rglob("*"))
    # Hub: rank 0 pushed every shard exactly once, and the complete manifest last.
    commits = local_hub.commits("alice/emb")
    uploaded = [path for commit in commits for path in commit.uploaded if path.startswith("data/")]
    assert sorted(uploaded) == [f"data/train-{i:05d}.parquet" for i in range(7)]
    assert json.loads(commits[-1].files["manifest.json"])["complete"]
    # Resume: shards 0-2 of the killed run were kept; only 3-6 were encoded, once each.
    assert sorted(ranks[0]["resumed_shards"] + ranks[1]["resumed_shards"]) == [3, 4, 5, 6]
    # Streaming: each process read the whole stream and encoded every other missing shard.
    assert ranks[0]["streamed_shards"] == [0, 2, 4, 6] and ranks[1]["streamed_shards"] == [1, 3, 5]
    assert ranks[0]["streamed_rows"] == ranks[1]["streamed_rows"] == 50
    streamed = tmp_path / "out" / "streamed"
    _assert_same_rows(ShardStore(streamed).load(), reference.load())
    manifest = json.loads((streamed / "manifest.json").read_text())
    assert manifest["complete"] and manifest["num_rows"] == 50 and len(manifest["shards"]) == 7

    # Training: DDP over 2 ranks halves the steps of one epoch. One process takes 13 batches
    # of 4; under DDP sentence-transformers drops the last partial batch: 12 batches, 6 steps.
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == (50 // 4) // 2
    assert len(ranks[0]["losses"]) == 6 and all(np.isfinite(ranks[0]["losses"]))
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
    output = result.stdout + result.stderr
    assert output.count("Saved the trained student") == 1  # by rank 0 only
    assert "Encoding 4 of the 7 missing shards (rank 0 of 2)" in output


@pytest.mark.slow
def test_kedro_pipelines_on_two_processes(tmp_path, teacher_dense, student):
    """One ``torchrun -m kedro run`` of both pipelines: each rank imports everything once."""
    project = make_project_copy(tmp_path / "project")
    params = ",".join(
        [
            f"teacher_embeddings.teacher_model={teacher_dense}",
            "teacher_embeddings.max_samples=30",
            "teacher_embeddings.chunk_size=8",
            f"distillation.student_model={student}",
            "distillation.batch_size=4",
            "distillation.logging_steps=1",
            "compute.device=cpu",
            "compute.batch_size=4",
            "evaluation.speed_texts=8",
            "export.formats=[onnx]",  # one format shows that rank 0 alone exports
        ]
    )
    result = _torchrun("-m", "kedro", "run", "--params", params, cwd=project)

    versions = list((project / "data" / "03_primary" / "teacher_embeddings").iterdir())
    assert len(versions) == 1  # both ranks wrote into rank 0's version folder
    folder = versions[0] / "teacher_embeddings"
    corpus = Dataset.from_parquet(
        str(project / "data" / "01_raw" / "corpus" / "demo_corpus.parquet")
    )
    config = EncodingConfig(teacher_model=teacher_dense, max_samples=30, chunk_size=8)
    job = prepare_encoding(corpus, config, ComputeConfig(device="cpu", batch_size=4))
    reference = run_encoding(job, ShardStore(project / "reference"))
    _assert_same_rows(ShardStore(folder).load(), reference.load())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 4 and manifest["num_rows"] == 30

    reporting = project / "data" / "08_reporting"
    for output in (
        project / "data" / "06_models" / "student_model",
        project / "data" / "06_models" / "student_exports",
        reporting / "distillation_metrics.json",
        reporting / "distillation_report.md",
        reporting / "training_curves.png",
    ):
        assert len(list(output.iterdir())) == 1, output  # saved once, by rank 0
    metrics = json.loads(next(reporting.glob("distillation_metrics.json/*/*.json")).read_text())
    # 27 training rows (3 held out): 6 full batches of 4, shared by 2 ranks -> 3 steps.
    assert metrics["training"]["world_size"] == 2
    assert metrics["training"]["global_step"] == 3
    assert len(metrics["loss_curve"]) == 3
    output = result.stdout + result.stderr
    assert "Rank 1 of 2 keeps" in output
    # transformers saves a model on rank 0 only, so rank 0 alone exports it.
    (exports,) = (project / "data" / "06_models" / "student_exports").glob("*/*")
    assert (exports / "onnx" / "model.onnx").exists()
    assert "Exports are written by rank 0 only" in output
    assert "onnx" in metrics["models"]  # rank 0 measured its exports
