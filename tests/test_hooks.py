"""The project's hooks through the kedro CLI: parameters are checked before the first node."""

import pytest

from tests.conftest import run_kedro
from tests.test_dry_run import project  # noqa: F401 (the tiny project, as a fixture)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("distillation.loss_type=cosin", "loss_type"),
        ("distillation.hub_token=hf_secret", "distillation.hub_token is set"),
        ("export.formats=onnx_fp8", "onnx_fp8"),
    ],
)
def test_a_bad_value_of_a_later_stage_stops_the_run_before_encoding(
    project,  # noqa: F811
    bad,
    message,
):
    result = run_kedro(project, "run", "--params", bad)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert message in output
    assert "Running node: encode_corpus" not in output
    assert not (project / "data" / "03_primary" / "teacher_embeddings").exists()
    assert "hf_secret" not in output.replace(bad, "")  # the token is never echoed
