"""From Kedro parameter groups to the frozen config dataclasses: shared helpers.

Each parameter group (``compute``, ``teacher_embeddings``, ``distillation``, ``evaluation``,
``export``) becomes one frozen dataclass; :func:`from_params` builds it and names unknown keys,
:func:`layer_list` reads a list of layer numbers the way ``kedro run --params`` hands it over.
Nothing here imports torch.
"""

from typing import Any, TypeVar

T = TypeVar("T")


def from_params(cls: type[T], params: dict[str, Any] | None, *, group: str) -> T:
    """Build the frozen dataclass ``cls`` from a parameter dict, naming unknown keys.

    Args:
        cls: A dataclass type.
        params: The parameter group as loaded by Kedro (``None`` means all defaults).
        group: The group's name, used in error messages.

    Returns:
        The validated config object.
    """
    params = dict(params or {})
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(
            f"Unknown key(s) {unknown} in the {group!r} parameters. Valid keys: {sorted(fields)}."
        )
    return cls(**params)


def layer_list(value: Any) -> Any:
    """A tuple of layer numbers from parameters: a list, one number, or numbers separated by spaces.

    ``kedro run --params`` splits on commas and turns a lone number into an int, so
    ``--params "distillation.student_init=0 2 4"`` is the command-line way to give ``[0, 2, 4]``
    and ``--params teacher_embeddings.layer_indices=6`` gives ``6``, read as ``(6,)``. Anything
    else is returned as it is, for the config's own check to explain.
    """
    if isinstance(value, str) and value.split() and all(p.isdigit() for p in value.split()):
        return tuple(int(p) for p in value.split())
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(value)
    return value
