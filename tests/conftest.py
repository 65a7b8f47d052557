"""Shared fixtures: tiny real sentence-transformers models built in-process, and small corpora.

Nothing here downloads anything: the tokenizer is a WordPiece trained on the fixture sentences
and the models are 2-layer BERTs of width 32/48 with random weights (seeded).
"""

import contextlib
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny models gain nothing from threads, and two test processes on a 2-core machine
# oversubscribe it; subprocesses (kedro run, kill -9 test) inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch
import yaml
from datasets import Dataset
from filelock import FileLock
from kedro.framework.hooks import hook_impl

WORDS = (
    "the a cat dog bird fish runs sleeps eats flies swims quickly slowly big small red blue green "
    "house tree river city car train music book reads writes paper science data model learns "
    "teacher student embedding vector space sentence word night day sun moon rain snow"
).split()


def training_gradients(model: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    """One training-mode forward + backward (dropout on, fixed seed); the gradients by name."""
    model.train()
    model.zero_grad()
    torch.manual_seed(0)
    features = model.preprocess(texts)
    model(dict(features))["sentence_embedding"].pow(3).sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def make_sentences(count: int, seed: int = 0) -> list[str]:
    """Random sentences of 3..24 words over a small vocabulary (varied lengths)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(3, 24))) for _ in range(count)]


def build_tokenizer(folder: Path) -> None:
    """Train a WordPiece tokenizer on the fixture vocabulary and save it as a BERT tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    tokenizer.train_from_iterator([*make_sentences(300), " ".join(WORDS)], trainer=trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    fast.save_pretrained(folder)


def build_model(
    folder: Path,
    *,
    hidden: int,
    layers: int = 2,
    dense: int | None = None,
    seed: int = 0,
    architecture: str = "bert",
) -> Path:
    """Save a tiny sentence-transformer: Transformer, Pooling[, Dense], Normalize.

    ``architecture``: ``bert`` or ``mpnet`` (the all-mpnet-base-v2 family's backbone).
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import BertConfig, BertModel, MPNetConfig, MPNetModel

    torch.manual_seed(seed)
    backbone_dir = folder / "backbone"
    build_tokenizer(backbone_dir)
    shape = {
        "vocab_size": 200,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": hidden * 2,
    }
    if architecture == "mpnet":  # positions start after the padding id: room for 64 tokens
        backbone = MPNetModel(MPNetConfig(**shape, max_position_embeddings=66, pad_token_id=0))
    else:
        backbone = BertModel(BertConfig(**shape, max_position_embeddings=64))
    backbone.save_pretrained(backbone_dir)
    transformer = Transformer(str(backbone_dir), max_seq_length=64)
    modules: list[torch.nn.Module] = [transformer, Pooling(hidden, pooling_mode="mean")]
    if dense is not None:
        modules.append(Dense(hidden, dense, activation_function=torch.nn.Tanh()))
    modules.append(Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    model_dir = folder / "model"
    model.save(str(model_dir))
    return model_dir


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder ``name``, filled by ``build(folder)`` once per test run and then read-only.

    Under pytest-xdist the workers share it (pytest-xdist's recipe for session data): the first
    worker to get here builds it under a file lock in the run's common temporary folder, the
    others wait for it. A build that failed is started again by the next worker that asks.
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    root = tmp_path_factory.getbasetemp().parent  # one per run, shared by its workers
    folder, done = root / name, root / f"{name}.built"
    with FileLock(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def _build_models(root: Path) -> None:
    build_model(root / "teacher_dense", hidden=48, dense=40, seed=1)
    build_model(root / "teacher_plain", hidden=48, layers=3, seed=2)
    build_model(root / "student", hidden=32, seed=3)
    build_model(root / "student_dense", hidden=32, dense=40, seed=4)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with the tiny models, built once per test run (shared by xdist workers)."""
    return built_once(tmp_path_factory, "models", _build_models)


@pytest.fixture(scope="session")
def teacher_dense(models_dir: Path) -> str:
    """Teacher with a Dense layer (48 -> 40): pre_dense and final differ in size."""
    return str(models_dir / "teacher_dense" / "model")


@pytest.fixture(scope="session")
def teacher_plain(models_dir: Path) -> str:
    """Teacher without Dense (3 layers, 48-d)."""
    return str(models_dir / "teacher_plain" / "model")


@pytest.fixture(scope="session")
def student(models_dir: Path) -> str:
    """Student without Dense (32-d): needs a projection to meet a 40/48-d target."""
    return str(models_dir / "student" / "model")


@pytest.fixture(scope="session")
def student_dense(models_dir: Path) -> str:
    """Student with a Dense layer (32 -> 40)."""
    return str(models_dir / "student_dense" / "model")


@pytest.fixture(scope="session")
def mpnet_student(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny MPNet sentence-transformer (3 layers, 32-d): the all-mpnet-base-v2 family's shape."""
    folder = built_once(
        tmp_path_factory,
        "mpnet",
        lambda folder: build_model(folder, hidden=32, layers=3, seed=5, architecture="mpnet"),
    )
    return str(folder / "model")


@pytest.fixture
def corpus() -> Dataset:
    """A 50-row corpus with a `text` column and an extra column."""
    texts = make_sentences(50, seed=7)
    return Dataset.from_dict({"text": texts, "source": ["fixture"] * len(texts)})


# Under pytest-xdist (README's `pytest -n 2`; `--dist loadgroup` in pyproject's addopts), the
# tests of these files run on one worker per group, which makes their expensive fixtures once:
# the project after a full run, the exported students, the documentation site, the viz server,
# module-scoped fixtures. The groups run first, in this order: tiny_project is built at once
# while the other worker exports the students, and is ready before the viz group (or the
# other tests that copy it, scheduled one by one) reads it. Every other test is scheduled on
# its own, the files of SLOW_FIRST first (the longest tests, measured with --durations), which
# evens out the end of the run.
XDIST_GROUPS = {
    "tests/test_project.py": "tiny_project",
    "tests/export/test_onnx_graph.py": "exports",
    "tests/export/test_runtime.py": "exports",
    "tests/export/test_student_export.py": "exports",
    "tests/test_docs.py": "docs_site",
    "tests/test_api.py": "api",
    "tests/test_conf_secrets.py": "conf_secrets",
    "tests/datasets/test_mteb_results_dataset.py": "mteb_results",
    "tests/test_viz.py": "viz",
}
_GROUP_ORDER = list(dict.fromkeys(XDIST_GROUPS.values()))
SLOW_FIRST = (
    "tests/test_distributed.py",
    "tests/test_from_nodes.py",
    "tests/pipelines/distillation/test_students_run.py",
    "tests/test_notebooks.py",
    "tests/pipelines/test_pipelines.py",
    "tests/test_dry_run.py",
)


def _xdist_group(nodeid: str) -> str | None:
    return XDIST_GROUPS.get(nodeid.split("::", 1)[0])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist: the grouped tests first (group by group), then SLOW_FIRST, then the rest."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return

    def rank(item: pytest.Item) -> tuple[int, int]:
        group = _xdist_group(item.nodeid)
        if group:
            return _GROUP_ORDER.index(group), 0
        path = item.nodeid.split("::", 1)[0]
        return len(_GROUP_ORDER), SLOW_FIRST.index(path) if path in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: each group, and the rest, keep pytest's order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of :data:`XDIST_GROUPS`, in the collection's order.

    xdist 3.8's own loadgroup finds a test's group in a suffix it adds to the test's id, which
    pytest 9 no longer lets it change: its groups would be ignored. This is the same scheduler
    (LoadScopeScheduling, one work unit per group) with the groups taken from the file names.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _xdist_group(nodeid) or nodeid

    config.option.loadscopereorder = False  # keep the order above: groups first, as listed
    return FileGroupScheduling(config, log)


@pytest.fixture(autouse=True)
def _isolated_hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep datasets' Arrow cache out of the user's home."""
    import datasets

    cache = tmp_path_factory.getbasetemp() / "hf_datasets_cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)


@pytest.fixture
def without_packages(monkeypatch: pytest.MonkeyPatch):
    """``hide(*names)`` makes those packages look uninstalled to every extras check.

    It patches :func:`embedding_distillation.extras.missing_packages`, the one place that asks
    whether a package is installed, so the tests run in the full environment.
    """
    from embedding_distillation import extras

    real = extras.missing_packages

    def hide(*names: str) -> None:
        def missing(packages):
            absent = set(real(packages))
            return [p for p in packages if p in names or p in absent]

        monkeypatch.setattr(extras, "missing_packages", missing)

    return hide


ROOT = Path(__file__).resolve().parents[1]


def make_project_copy(
    path: Path, *, parameters: dict | None = None, source: Path | None = None
) -> Path:
    """A project at ``path``: a copy of ``source`` or a fresh one; the one project-copy helper.

    With ``source`` (a project folder such as ``tiny_project``), everything is copied, data
    included, but a ``kedro viz build`` site. Without it, the project's conf and pyproject are
    copied with a 40-row corpus in data/.

    ``parameters`` (e.g. ``{"teacher_embeddings": {"max_samples": 30}}``) is merged into the base
    groups and written as whole groups to ``conf/local/parameters.yml``, the env Kedro runs by
    default, so the override holds whatever the project's parameter merge strategy. A fresh
    copy trains one student (``students: null``) unless ``parameters`` names ``students``.
    """
    if source is not None:
        shutil.copytree(source, path, ignore=shutil.ignore_patterns("build"), dirs_exist_ok=True)
    else:
        ignore = shutil.ignore_patterns("credentials.yml")
        shutil.copytree(ROOT / "conf", path / "conf", ignore=ignore, dirs_exist_ok=True)
        (path / "conf" / "base" / "credentials.yml").write_text(
            (ROOT / "conf" / "base" / "credentials.yml").read_text()
        )
        shutil.copy(ROOT / "pyproject.toml", path)
        (path / "src").mkdir(exist_ok=True)  # the package itself is installed (pip install -e .)
        shutil.copy(ROOT / ".telemetry", path)
        corpus_dir = path / "data" / "01_raw" / "corpus"
        corpus_dir.mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({"text": make_sentences(40, seed=3)}).to_parquet(
            str(corpus_dir / "demo_corpus.parquet")
        )
    if source is None or parameters:
        # One student unless the test names several: conf/base's demo trains two, and an
        # environment cannot empty `students` (parameters merge key by key), only null it.
        parameters = {"students": None, **(parameters or {})}
        base = base_parameters(path / "conf")
        merged = {
            group: {**base.get(group, {}), **values} if group != "students" else values
            for group, values in parameters.items()
        }
        (path / "conf" / "local" / "parameters.yml").write_text(yaml.safe_dump(merged))
    return path


def base_parameters(conf: Path = ROOT / "conf") -> dict[str, dict]:
    """The parameter groups of ``conf/base``, its ``parameters*.yml`` files merged."""
    merged: dict = {}
    for file in sorted((conf / "base").glob("parameters*.yml")):
        merged |= yaml.safe_load(file.read_text()) or {}
    return merged


def kedro_env() -> dict[str, str]:
    """Environment for a kedro subprocess: offline, no telemetry."""
    return {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}


def run_kedro(
    project: Path, *args: str, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess:
    """Run ``python -m kedro <args>`` in ``project`` (``env`` added) and capture its output.

    The console is wide, so rich does not wrap the log lines; :func:`kedro_output` undoes what
    wrapping is left. Only where the command line is what a test is about: a subprocess imports
    torch, transformers and mteb again (:func:`run_in_process` does not).
    """
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        check=False,
        cwd=project,
        env={**kedro_env(), "COLUMNS": "400", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kedro_output(result: subprocess.CompletedProcess) -> str:
    """stdout + stderr of :func:`run_kedro` with rich's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


class NodeRecorder:
    """A Kedro hook: the names of the nodes a run starts, in order (``ran``)."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self.ran.append(node.name)


def run_in_process(
    project: Path,
    *,
    pipeline: str | None = None,
    params: str = "",
    env: str | None = None,
    from_nodes: Iterable[str] | None = None,
    load_versions: dict[str, str] | None = None,
    hooks: Iterable[Any] = (),
) -> list[str]:
    """``kedro run`` with these options in this process; the names of the nodes that ran.

    The same steps as the command: the project's session class, settings, hooks and
    SequentialRunner, with ``project`` as working directory (parameters name models by paths
    relative to it). ``params`` is written as for ``--params`` (``a.b=1,dry_run=true``) and
    parsed as the command parses it. ``hooks`` are registered besides the project's; errors
    propagate as the exceptions the command would report.
    """
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project
    from kedro.runner import SequentialRunner
    from omegaconf import OmegaConf

    items = [item.strip() for item in params.split(",") if item.strip()]
    runtime_params = OmegaConf.to_container(OmegaConf.from_dotlist(items)) if items else None
    recorder = NodeRecorder()
    with contextlib.chdir(project), _bootstrap_undone():
        bootstrap_project(project)
        with settings.SESSION_CLASS.create(
            project_path=project, env=env, runtime_params=runtime_params
        ) as session:
            for hook in (recorder, *hooks):  # the session's own hook manager: no public way in
                session._hook_manager.register(hook)
            session.run(
                pipeline_names=[pipeline] if pipeline else [],
                from_nodes=list(from_nodes) if from_nodes else None,
                load_versions=load_versions,
                runner=SequentialRunner(),
            )
    return recorder.ran


@contextlib.contextmanager
def _bootstrap_undone():
    """Undo what Kedro's ``bootstrap_project`` adds to ``sys.path`` and ``PYTHONPATH``."""
    path, python_path = sys.path[:], os.environ.get("PYTHONPATH")
    try:
        yield
    finally:
        sys.path[:] = path
        if python_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = python_path


TINY_PROJECT_TOKEN = "hf_secret_token_123"  # HF_TOKEN of tiny_project's run: never printed


def _build_tiny_project(folder: Path, teacher: str, student: str) -> None:
    path = folder / "project"
    models = path / "data" / "01_raw" / "models"
    shutil.copytree(teacher, models / "teacher")
    shutil.copytree(student, models / "student")
    make_project_copy(
        path,
        parameters={
            "compute": {"device": "cpu", "batch_size": 8},
            "teacher_embeddings": {
                "teacher_model": "data/01_raw/models/teacher",
                "max_samples": 30,
                "chunk_size": 10,
            },
            "distillation": {
                "student_model": "data/01_raw/models/student",
                "batch_size": 8,
                "logging_steps": 1,
            },
            "evaluation": {"speed_texts": 8},
            # One format: the export node's wiring is under test here; every format is
            # exported and evaluated in tests/export/, and OpenVINO's conversion is slow.
            "export": {"formats": ["onnx"]},
        },
    )
    result = run_kedro(path, "run", HF_TOKEN=TINY_PROJECT_TOKEN)
    (folder / "kedro_run.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="session")
def tiny_project(
    tmp_path_factory: pytest.TempPathFactory, teacher_dense: str, student: str
) -> Path:
    """A project copy configured (conf/local) for the tiny models, after one ``kedro run``.

    As in the demo, the models sit in data/01_raw/models/ and the parameters name them by paths
    relative to the project root. Its data/ holds teacher embeddings, a student model, metrics,
    report and plots, as after a user's first run of the demo; the run's output (with
    ``HF_TOKEN`` set to :data:`TINY_PROJECT_TOKEN`) is in ``kedro_run.log`` beside it.

    Built once per test run and shared by the xdist workers: read it, never write to it; a test
    that writes takes ``tiny_project_copy``.
    """
    folder = built_once(
        tmp_path_factory,
        "tiny_project",
        lambda folder: _build_tiny_project(folder, teacher_dense, student),
    )
    return folder / "project"


@pytest.fixture
def tiny_project_copy(tiny_project: Path, tmp_path: Path) -> Path:
    """This test's own copy of ``tiny_project``, data included."""
    return make_project_copy(tmp_path / "project", source=tiny_project)
