"""``ExportConfig``: the ``export`` parameter group (which formats the pipeline writes)."""

from dataclasses import dataclass
from typing import Any

from embedding_distillation.export.formats import check_formats, default_formats


@dataclass(frozen=True)
class ExportConfig:
    """The ``export`` parameter group, validated on construction (before training).

    Attributes:
        formats: Export format names (``onnx``, ``onnx_int8``, ``openvino``,
            ``openvino_int8``); ``[]`` turns exporting off. ``None`` for the default: every
            format whose packages are installed, so all four with the ``export`` extra and none
            without it (one log line gives the ``pip install`` line; a bare install still
            trains). A format named explicitly without its packages raises
            :class:`~embedding_distillation.extras.MissingExtraError` here, before training.
    """

    formats: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        formats = self.formats
        if isinstance(formats, str):  # --params "export.formats=onnx onnx_int8"
            formats = tuple(formats.split())
        resolved = check_formats(default_formats() if formats is None else formats)
        object.__setattr__(self, "formats", resolved)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "ExportConfig":
        """Build from the Kedro ``export`` group, rejecting unknown keys by name."""
        from embedding_distillation.params import from_params

        return from_params(cls, params, group="export")
