import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from datasets import Dataset

from embedding_distillation.compute import ComputeConfig
from embedding_distillation.encoding import batching, shards
from embedding_distillation.encoding.config import EncodingConfig
from embedding_distillation.encoding.engine import ShardEncoder, prepare_encoding, run_encoding
from embedding_distillation.encoding.shards import ShardStore
from tests.spies import Crash, crash_at, record_encoded

CPU = ComputeConfig(device="cpu", batch_size=4)


def _job(corpus, teacher, **options):
    config = EncodingConfig(teacher_model=teacher, chunk_size=8, **options)
    return prepare_encoding(corpus, config, CPU)


def _arrays(dataset, column):
    return np.asarray(dataset.with_format("numpy")[column])


@pytest.fixture
def reference(tmp_path, corpus, teacher_dense):
    return run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path / "reference")).load()


def _assert_same(resumed, reference):
    assert resumed["row_id"] == reference["row_id"] == list(range(50))
    assert resumed["text"] == reference["text"]
    for column in ("teacher_embedding_final", "teacher_embedding_pre_dense"):
        np.testing.assert_array_equal(_arrays(resumed, column), _arrays(reference, column))


def test_resume_after_a_crash_inside_a_shard(
    tmp_path, corpus, teacher_dense, reference, monkeypatch
):
    job = _job(corpus, teacher_dense)
    crash_at(monkeypatch, job, 3)
    with pytest.raises(Crash):
        run_encoding(job, ShardStore(tmp_path / "out"))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["num_rows"] == 24

    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    _assert_same(run_encoding(job, ShardStore(tmp_path / "out")).load(), reference)
    assert encoded == [3, 4, 5, 6]  # shards 0-2 were not encoded again


def test_resume_after_a_crash_during_the_manifest_write(
    tmp_path, corpus, teacher_dense, reference, monkeypatch
):
    calls = {"n": 0}
    original = shards._write_json_atomic

    def flaky(path, payload):
        calls["n"] += 1
        if calls["n"] == 4:  # begin, shard 0, shard 1, then die while listing shard 2
            path.with_name(f".{path.name}.tmp").write_text("{half")
            raise Crash()
        original(path, payload)

    monkeypatch.setattr(shards, "_write_json_atomic", flaky)
    with pytest.raises(Crash):
        run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path / "out"))
    monkeypatch.undo()
    # Shard 2's file was renamed into place whole, but is not listed: the rerun lists it
    # instead of encoding it again (a half-written shard only ever has a temporary name).
    assert (tmp_path / "out" / "data" / "train-00002.parquet").exists()
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["num_rows"] == 16
    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    _assert_same(run_encoding(job, ShardStore(tmp_path / "out")).load(), reference)
    assert encoded == [3, 4, 5, 6]


def test_a_finished_folder_is_reused_without_encoding(tmp_path, corpus, teacher_dense, monkeypatch):
    run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path))
    encoded = record_encoded(monkeypatch)
    assert run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path)).load().num_rows == 50
    assert encoded == []


def test_a_changed_corpus_is_refused(tmp_path, corpus, teacher_dense):
    run_encoding(_job(corpus, teacher_dense, max_samples=16), ShardStore(tmp_path))
    with pytest.raises(
        shards.ShardFolderError, match=r"changed: \['corpus_fingerprint', 'num_rows'\]"
    ):
        run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path))


def test_embeddings_do_not_depend_on_batch_mates(tmp_path, corpus, teacher_dense):
    alone = run_encoding(
        prepare_encoding(
            corpus,
            EncodingConfig(teacher_model=teacher_dense, chunk_size=50),
            ComputeConfig(device="cpu", batch_size=1),
        ),
        ShardStore(tmp_path / "alone"),
    ).load()
    batched = run_encoding(
        prepare_encoding(
            corpus,
            EncodingConfig(teacher_model=teacher_dense, chunk_size=50),
            ComputeConfig(device="cpu", batch_size=16),
        ),
        ShardStore(tmp_path / "batched"),
    ).load()
    np.testing.assert_allclose(
        _arrays(alone, "teacher_embedding_final"),
        _arrays(batched, "teacher_embedding_final"),
        atol=1e-5,
    )


def test_large_shards_are_tokenized_in_windows_of_similar_lengths(
    corpus, teacher_dense, monkeypatch
):
    run = ShardEncoder(_job(corpus, teacher_dense))  # batch_size 4
    shard = batching.ShardTexts(0, np.arange(50), list(corpus["text"]))
    whole = run.encode_texts(shard.texts)  # one window of 50
    monkeypatch.setattr(batching, "TOKENIZE_WINDOW", 7)
    tokenized = run.tokenize(shard)
    positions = [rows for rows, _ in tokenized.batches]
    assert sorted(np.concatenate(positions).tolist()) == list(range(50))
    assert len(positions) == 8 * 2 - 1  # 7 windows of 7 texts (4 + 3) and one of 1
    lengths = batching.token_lengths(run.teacher(), shard.texts)
    for rows, features in tokenized.batches:  # each batch is cut to its own longest text
        assert features["input_ids"].shape == (len(rows), lengths[rows].max())
    assert tokenized.tokens == lengths.sum()
    windowed = run.encode_batches(tokenized.batches)
    np.testing.assert_allclose(
        windowed["teacher_embedding_final"], whole["teacher_embedding_final"], atol=1e-5
    )


def test_token_budget_batches_respect_the_budget(corpus, teacher_dense):
    run = ShardEncoder(_job(corpus, teacher_dense, max_tokens_per_batch=64))
    lengths = batching.token_lengths(run.teacher(), list(corpus["text"]))
    order = np.argsort(-lengths, kind="stable")
    batches = list(batching.length_batches(order, lengths, batch_size=4, max_tokens=64))
    assert np.concatenate(batches).tolist() == order.tolist()
    assert len(batches) > 50 // 32 + 1  # smaller than batch_size batches
    for batch in batches:
        assert len(batch) == 1 or lengths[batch].max() * len(batch) <= 64


def test_token_budget_gives_the_same_embeddings(tmp_path, corpus, teacher_dense, reference):
    budget = run_encoding(
        _job(corpus, teacher_dense, max_tokens_per_batch=100), ShardStore(tmp_path / "budget")
    ).load()
    np.testing.assert_allclose(
        _arrays(budget, "teacher_embedding_final"),
        _arrays(reference, "teacher_embedding_final"),
        atol=1e-5,
    )


def test_texts_over_the_limit_are_truncated_and_counted(tmp_path, teacher_dense, caplog):
    data = Dataset.from_dict(
        {"text": ["the cat " * 100, "a dog"]}
    )  # the tiny teacher reads 64 tokens
    with caplog.at_level("WARNING"):
        store = run_encoding(_job(data, teacher_dense), ShardStore(tmp_path))
    assert store.manifest()["truncated_texts"] == 1
    assert "1 texts were longer than the teacher's 64-token limit" in caplog.text


def test_float16_storage(tmp_path, corpus, teacher_dense, reference):
    half = run_encoding(
        _job(corpus, teacher_dense, embedding_dtype="float16"), ShardStore(tmp_path / "h")
    ).load()
    assert half.features["teacher_embedding_final"].feature.dtype == "float16"
    np.testing.assert_allclose(
        _arrays(half, "teacher_embedding_final").astype(np.float32),
        _arrays(reference, "teacher_embedding_final"),
        atol=2e-3,
    )


def test_invalid_texts_are_skipped_and_row_ids_keep_the_source_position(tmp_path, teacher_dense):
    data = Dataset.from_dict({"text": ["the cat", None, "", "a dog runs"]})
    out = run_encoding(_job(data, teacher_dense), ShardStore(tmp_path)).load()
    assert out["row_id"] == [0, 3]
    assert out["text"] == ["the cat", "a dog runs"]


SCRIPT = textwrap.dedent(
    """
    import sys, time
    from datasets import Dataset
    from embedding_distillation.compute import ComputeConfig
    from embedding_distillation.encoding import engine
    from embedding_distillation.encoding.config import EncodingConfig
    from embedding_distillation.encoding.shards import ShardStore
    texts = [l.rstrip("\\n") for l in open(sys.argv[3])]
    job = engine.prepare_encoding(
        Dataset.from_dict({"text": texts}),
        EncodingConfig(teacher_model=sys.argv[1], chunk_size=8),
        ComputeConfig(device="cpu", batch_size=4),
    )
    if sys.argv[4] == "slow":
        encode = engine.ShardEncoder.encode_shard
        engine.ShardEncoder.encode_shard = lambda self, s: (time.sleep(0.3), encode(self, s))[1]
    engine.run_encoding(job, ShardStore(sys.argv[2]))
    """
)


@pytest.mark.slow
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path, corpus, teacher_dense, reference):
    script = tmp_path / "encode.py"
    script.write_text(SCRIPT)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(corpus["text"]) + "\n")
    out = tmp_path / "out"
    args = [sys.executable, str(script), teacher_dense, str(out), str(texts)]
    process = subprocess.Popen(
        [*args, "slow"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        manifest = out / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text())["num_rows"] >= 16:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = json.loads((out / "manifest.json").read_text())
    assert not done["complete"] and 16 <= done["num_rows"] < 50
    # The rerun, in this process: the script's job on the same texts.
    rerun = Dataset.from_dict({"text": texts.read_text().splitlines()})
    run_encoding(_job(rerun, teacher_dense), ShardStore(out))
    _assert_same(ShardStore(out).load(), reference)


@pytest.mark.slow
def test_compile_model_gives_the_same_embeddings(tmp_path, corpus, teacher_dense, reference):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    config = EncodingConfig(teacher_model=teacher_dense, chunk_size=8)
    job = prepare_encoding(
        corpus, config, ComputeConfig(device="cpu", batch_size=4, compile_model=True)
    )
    compiled = run_encoding(job, ShardStore(tmp_path / "compiled")).load()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it really compiled
    np.testing.assert_allclose(
        _arrays(compiled, "teacher_embedding_final"),
        _arrays(reference, "teacher_embedding_final"),
        atol=1e-4,
    )


@pytest.mark.parametrize("flag", ["use_bf16", "use_fp16"])
def test_half_precision_matches_float32_within_tolerance(
    tmp_path, corpus, teacher_dense, reference, flag
):
    config = EncodingConfig(teacher_model=teacher_dense, chunk_size=50)
    job = prepare_encoding(
        corpus, config, ComputeConfig(device="cpu", batch_size=8, **{flag: True})
    )
    half = _arrays(run_encoding(job, ShardStore(tmp_path / flag)).load(), "teacher_embedding_final")
    full = _arrays(reference, "teacher_embedding_final")
    cosine = np.sum(half * full, axis=1) / (
        np.linalg.norm(half, axis=1) * np.linalg.norm(full, axis=1)
    )
    assert half.dtype == np.float32  # stored as float32 whatever the compute precision
    assert cosine.min() > 0.99  # the documented tolerance


def test_on_listed_sees_each_shard_once_and_says_when_all_are_listed(
    tmp_path, corpus, teacher_dense
):
    calls = []

    def on_listed(store, all_listed):
        calls.append((all_listed, store.is_complete(), store.manifest()["num_rows"]))

    run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path), on_listed=on_listed)
    # 50 rows in shards of 8: six full shards, then the last 2 rows; completion comes after.
    assert calls == [(False, False, 8 * n) for n in range(1, 7)] + [(True, False, 50)]


def test_one_process_finishes_what_several_left_with_gaps(
    tmp_path, corpus, teacher_dense, reference, monkeypatch
):
    # A killed 2-process run: rank 1 wrote shards 1 and 3, rank 0 only began the folder.
    run = ShardEncoder(_job(corpus, teacher_dense))
    store = ShardStore(tmp_path / "out")
    store.begin(run.identity())
    for shard in run.shards(done={0, 2, 4, 5, 6}):  # shards 1 and 3
        store.write_shard_file(shard.index, run.encode_shard(run.tokenize(shard)).table)

    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    _assert_same(run_encoding(job, ShardStore(tmp_path / "out")).load(), reference)
    assert encoded == [0, 2, 4, 5, 6]


def test_a_rerun_re_encodes_only_a_shard_whose_bytes_changed(
    tmp_path, corpus, teacher_dense, reference, monkeypatch
):
    run_encoding(_job(corpus, teacher_dense), ShardStore(tmp_path / "out"))
    path = tmp_path / "out" / "data" / "train-00002.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))

    job = _job(corpus, teacher_dense)
    encoded = record_encoded(monkeypatch, job)
    _assert_same(run_encoding(job, ShardStore(tmp_path / "out")).load(), reference)
    assert encoded == [2]
