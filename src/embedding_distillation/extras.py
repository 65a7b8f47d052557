"""The optional extras of the distribution, and the error that names the one a feature needs.

A bare ``pip install embedding-distillation`` encodes, trains and evaluates; two extras add the
rest, as sentence-transformers does with ``[train]``, ``[onnx]`` and ``[openvino]``:

- ``export``: the ONNX, int8 and OpenVINO exports (onnx, onnxscript, onnxruntime, openvino, nncf);
- ``static``: ``student_type: static``, model2vec's distillation (model2vec, skeletoken).

Torch-free, and nothing is imported to check: :func:`require` runs while parameters are
validated, so a missing extra stops a run before any model loads.
"""

import importlib.util
from collections.abc import Sequence

DISTRIBUTION = "embedding-distillation"

# Import names of each extra's packages (as in pyproject.toml's [project.optional-dependencies]).
EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("onnx", "onnxscript", "onnxruntime", "openvino", "nncf"),
    "static": ("model2vec", "skeletoken"),
}


class MissingExtraError(ModuleNotFoundError):
    """A feature needs an extra of the distribution whose packages are not installed."""


def missing_packages(packages: Sequence[str]) -> list[str]:
    """The import names of ``packages`` that are not installed here (none is imported)."""
    return [name for name in packages if importlib.util.find_spec(name) is None]


def install_command(extra: str) -> str:
    """The ``pip install`` line that adds ``extra``."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def require(
    extra: str, what: str, packages: Sequence[str] | None = None, *, otherwise: str = ""
) -> None:
    """Raise unless the packages ``what`` needs from ``extra`` are installed.

    Args:
        extra: The extra's name, a key of :data:`EXTRAS`.
        what: What needs it, for the message, e.g. ``"export format 'onnx_int8'"``.
        packages: The import names ``what`` needs (default: all of the extra's).
        otherwise: The other way out, appended to the message, e.g.
            ``"drop 'onnx_int8' from export.formats"``.

    Raises:
        MissingExtraError: Naming the missing packages and the ``pip install`` line.
    """
    absent = missing_packages(EXTRAS[extra] if packages is None else packages)
    if not absent:
        return
    verb = "is" if len(absent) == 1 else "are"
    raise MissingExtraError(
        f"{what} needs the {extra} extra ({', '.join(absent)} {verb} not installed): "
        f"{install_command(extra)} (in a clone of the project: pip install -e '.[{extra}]')"
        + (f", or {otherwise}." if otherwise else "."),
        name=absent[0],
    )
