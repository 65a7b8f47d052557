"""No Hub token in the parameters: they show in kedro-viz, `kedro catalog` and run logs.

Tokens come from credentials (conf/local/credentials.yml, else HF_TOKEN) through the catalog
entries that talk to the Hub.
"""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kedro.config import OmegaConfigLoader

from embedding_distillation.settings import CONFIG_LOADER_ARGS
from tests.conftest import ROOT

SENTINEL = "hf_sentinelTokenFromTheEnvironment42"
TOKEN_KEY = re.compile(r"(^|_)(token|secret|password)$", re.IGNORECASE)
TOKEN_VALUE = re.compile(r"hf_[A-Za-z0-9]{6,}|HF_TOKEN")
ENVIRONMENTS = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name != "base")
HUB_DATASETS = (
    "corpus",
    "hub_credentials",
    "teacher_embeddings_hub",
    "student_model_hub",
)


def token_findings(value: Any, path: str = "") -> Iterator[str]:
    """Where ``value`` (a parameter tree) holds a token-like key or a token-like string."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if TOKEN_KEY.search(str(key)):
                yield f"key {where}"
            yield from token_findings(item, where)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from token_findings(item, f"{path}[{index}]")
    elif isinstance(value, str) and (TOKEN_VALUE.search(value) or SENTINEL in value):
        yield f"value at {path}"


@pytest.fixture(scope="module")
def conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's conf as checked in: conf/local holds only the credentials example."""
    folder = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(ROOT / "conf", folder, ignore=shutil.ignore_patterns("local"))
    (folder / "local").mkdir()
    shutil.copy(ROOT / "conf" / "local" / "credentials.example.yml", folder / "local")
    return folder


def _config(conf: Path, env: str) -> OmegaConfigLoader:
    args = {k: v for k, v in CONFIG_LOADER_ARGS.items() if k != "default_run_env"}
    return OmegaConfigLoader(conf_source=str(conf), env=env, **args)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_parameter_holds_a_token(monkeypatch, conf, env):
    """The merged parameters of each environment: what kedro-viz shows as parameter nodes."""
    monkeypatch.setenv("HF_TOKEN", SENTINEL)  # an ${oc.env:HF_TOKEN} would bring it in
    parameters = _config(conf, env)["parameters"]
    assert {"compute", "teacher_embeddings", "distillation"} <= set(parameters)
    assert list(token_findings(parameters)) == []


def test_the_check_finds_what_it_looks_for():
    parameters = {
        "distillation": {"hub_token": None, "max_tokens_per_batch": 8, "repo_id": "a/b"},
        "other": [{"note": "hf_abcdefgh1234"}, f"{SENTINEL}"],
    }
    assert list(token_findings(parameters)) == [
        "key distillation.hub_token",
        "value at other[0].note",
        "value at other[1]",
    ]


def test_the_hub_datasets_take_the_huggingface_credentials(monkeypatch, conf):
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    config = _config(conf, "local")
    catalog = config["catalog"]
    assert {name: catalog[name].get("credentials") for name in HUB_DATASETS} == dict.fromkeys(
        HUB_DATASETS, "huggingface"
    )
    assert config["credentials"]["huggingface"]["token"] == SENTINEL  # the HF_TOKEN fallback


def test_the_credentials_example_overrides_nothing(monkeypatch, conf):
    """Kedro reads conf/local/credentials.example.yml too: it must hold no live key."""
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    assert _config(conf, "local")["credentials"] == {"huggingface": {"token": SENTINEL}}
    example = (conf / "local" / "credentials.example.yml").read_text()
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines())
    assert "huggingface:\n  token: hf_your_token_here" in uncommented  # what to copy is there
