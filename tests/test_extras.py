import pytest

from embedding_distillation import extras
from embedding_distillation.extras import MissingExtraError, require


def test_an_installed_extra_passes():
    require("export", "the exports")
    require("static", "a static student")


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        (
            ["nncf"],
            r"^the exports needs the export extra \(nncf is not installed\): "
            r"pip install 'embedding-distillation\[export\]' "
            r"\(in a clone of the project: pip install -e '\.\[export\]'\)\.$",
        ),
        (
            ["onnx", "openvino"],
            r"^the exports needs the export extra \(onnx, openvino are not installed\): ",
        ),
    ],
)
def test_a_missing_package_names_the_extra_and_the_pip_line(without_packages, hidden, message):
    without_packages(*hidden)
    with pytest.raises(MissingExtraError, match=message) as raised:
        require("export", "the exports")
    assert isinstance(raised.value, ModuleNotFoundError)
    assert raised.value.name == hidden[0]


def test_only_the_packages_asked_for_are_checked(without_packages):
    without_packages("openvino")
    require("export", "ONNX", ("onnx", "onnxruntime"))
    with pytest.raises(
        MissingExtraError,
        match=r"\(openvino is not installed\): pip install 'embedding-distillation\[export\]' "
        r".*, or drop it\.$",
    ):
        require("export", "OpenVINO", ("onnx", "openvino"), otherwise="drop it")


def test_every_extra_is_in_pyproject_and_dev_installs_them():
    import tomllib

    from packaging.requirements import Requirement

    from tests.conftest import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    assert project["name"] == extras.DISTRIBUTION
    for extra, packages in extras.EXTRAS.items():
        # Here each distribution's name is also its import name.
        assert [Requirement(r).name for r in optional[extra]] == list(packages), extra
    assert "embedding-distillation[export,static]" in optional["dev"]
    required = {Requirement(r).name for r in project["dependencies"]}
    assert not required & {p for packages in extras.EXTRAS.values() for p in packages}
