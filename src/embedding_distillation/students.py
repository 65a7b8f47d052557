"""Several students from one set of teacher embeddings: names, options, and failure isolation.

The ``students`` parameters name one entry per student, each overriding keys of the
``distillation`` group (the shared base)::

    students:
      minilm: {}
      static: {student_type: static, learning_rate: 3.0e-3}

A name is a Python identifier: it names a Kedro namespace (``kedro run --namespaces static``),
the student's datasets (``static.student_model``) and its folders. :func:`student_options`
merges an entry into the base, :func:`check_students` builds every student's config before the
first node runs, and :func:`isolated` (for nodes) and :func:`capture` (for the Python API) turn
one student's failure into a :class:`StudentFailure` record, so the other students run on.

Nothing here imports Kedro; torch is imported only when a config is built or a failure is
handled (the pipeline registry reads the names).
"""

import copy
import functools
import keyword
import logging
import os
import posixpath
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ParamSpec, TypeGuard, TypeVar

if TYPE_CHECKING:
    from embedding_distillation.training.config import EmbeddingTrainerConfig

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

STUDENTS = "students"
FAILED = "failed"
# Lines of the formatted traceback a failure record keeps (the last ones: where it was raised).
TRACEBACK_LINES = 20


def student_names(parameters: Mapping[str, Any]) -> tuple[str, ...]:
    """The students the run's parameters name, in file order, each name checked.

    Args:
        parameters: The run's parameters (all groups); their ``students`` group is read.

    Returns:
        The names of the non-null entries of ``students``; ``()`` when it is missing, null or
        ``{}`` (the single-student pipeline).

    Raises:
        ValueError: When ``students`` is not a mapping, a name is not a usable Python
            identifier, two names differ only in case, or an entry is not a mapping.
    """
    return tuple(_entries(parameters.get(STUDENTS)))


def student_options(base: Mapping[str, Any], name: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """One student's ``distillation`` options: its entry merged over the shared base.

    The merge is shallow: a key the entry sets replaces the base's value whole (mappings and
    lists included), ``null`` included. ``output_dir`` is ``<base output_dir>/<name>`` unless
    the entry sets it, so no student resumes from another's checkpoints.

    Args:
        base: The ``distillation`` group.
        name: The student's name.
        entry: The student's entry of ``students`` (``{}`` trains the base as it is).

    Returns:
        A new dict; ``base`` and ``entry`` are not changed.

    Raises:
        ValueError: When ``name`` is not a usable identifier or ``entry`` is not a mapping.
    """
    _check_name(name)
    _check_entry(name, entry)
    options = copy.deepcopy({**base, **entry})
    if "output_dir" not in entry:
        options["output_dir"] = posixpath.join(os.fspath(_base_output_dir(base)), name)
    return options


def check_students(
    base: Mapping[str, Any],
    entries: Mapping[str, Any] | None,
    compute: Mapping[str, Any] | None,
) -> dict[str, "EmbeddingTrainerConfig"]:
    """Build every student's config, the way the pipeline will, before anything runs.

    Args:
        base: The ``distillation`` group.
        entries: The ``students`` group (``{name: entry}``; null entries are left out).
        compute: The ``compute`` group (device and precision), ``None`` for its defaults.

    Returns:
        ``{name: config}`` in file order.

    Raises:
        ValueError: For an invalid name or entry; for an unknown key or invalid value of a
            student, naming ``students.<name>``; when two students push to the same
            ``hub_model_id`` or save checkpoints to the same ``output_dir``.
    """
    from embedding_distillation.training.config import EmbeddingTrainerConfig

    valid = {field.name for field in fields(EmbeddingTrainerConfig)}
    if unknown := sorted(set(base) - valid):  # else reported as every student's unknown key
        raise ValueError(
            f"Unknown key(s) {unknown} in the 'distillation' parameters (the base of every "
            f"student). Valid keys: {sorted(valid)}."
        )
    configs = {}
    for name, entry in _entries(entries).items():
        group = f"{STUDENTS}.{name}"
        options = student_options(base, name, entry)
        try:
            configs[name] = EmbeddingTrainerConfig.from_params(
                options, dict(compute) if compute is not None else None, group=group
            )
        except ValueError as e:
            message = str(e)
            raise ValueError(message if group in message else f"{group}: {message}") from e
    if pair := first_shared(configs, lambda c: c.hub_model_id if c.push_to_hub else None):
        (first, second), value = pair
        raise ValueError(
            f"students.{first} and students.{second} both push to hub_model_id {value!r}: one "
            "would overwrite the other's model. Give each student its own hub_model_id."
        )
    if pair := first_shared(
        configs,
        lambda c: None if c.output_dir is None else posixpath.normpath(os.fspath(c.output_dir)),
    ):
        (first, second), value = pair
        raise ValueError(
            f"students.{first} and students.{second} both save checkpoints to output_dir "
            f"{value!r}: one would resume from or delete the other's checkpoints. Give each "
            "student its own output_dir, or leave it out of the entries (each then saves to "
            "<distillation.output_dir>/<name>)."
        )
    return configs


@dataclass(frozen=True)
class StudentFailure:
    """One student's failed step, saved in place of that step's outputs.

    Attributes:
        student: The student's name.
        step: The step that raised, e.g. ``train_student_model``.
        error: The exception's type name, e.g. ``OutOfMemoryError``.
        message: The exception's message.
        traceback_tail: The last lines of the formatted traceback.
    """

    student: str
    step: str
    error: str
    message: str
    traceback_tail: str = ""

    @classmethod
    def from_exception(cls, student: str, step: str, error: BaseException) -> "StudentFailure":
        """The failure of ``step`` of ``student`` that raised ``error``."""
        lines = "".join(traceback.format_exception(error)).splitlines()
        return cls(
            student=student,
            step=step,
            error=type(error).__name__,
            message=str(error),
            traceback_tail="\n".join(lines[-TRACEBACK_LINES:]),
        )

    def record(self) -> dict[str, dict[str, str]]:
        """The plain-JSON record saved in place of the step's outputs: ``{"failed": {...}}``."""
        return {FAILED: asdict(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "StudentFailure":
        """Read back a record made by :meth:`record`.

        Raises:
            ValueError: When ``record`` is not a failure record.
        """
        if not is_failure(record):
            raise ValueError(
                f"Not a student failure record: {record!r}; expected {{'failed': {{'student': "
                "..., 'step': ..., 'error': ..., 'message': ...}}."
            )
        values = record[FAILED]
        return cls(**{f.name: str(values.get(f.name, "")) for f in fields(cls)})

    def describe(self) -> str:
        """One line: ``static failed at train_student_model: ValueError: ...``."""
        return f"{self.student} failed at {self.step}: {self.error}: {self.message}"

    def report(self) -> str:
        """The student's Markdown report in place of its evaluation: where, why, how to rerun."""
        return (
            f"# Distillation report: `{self.student}` failed\n\n"
            f"**{self.student} failed at {self.step}**: {self.error}: {self.message}\n\n"
            f"Rerun it alone: `kedro run --namespaces {self.student}`.\n\n"
            f"```\n{self.traceback_tail}\n```\n"
        )


def is_failure(value: object) -> TypeGuard[Mapping[str, Any]]:
    """True when ``value`` is a failure record (:meth:`StudentFailure.record`)."""
    return (
        isinstance(value, Mapping)
        and set(value) == {FAILED}
        and isinstance(value[FAILED], Mapping)
        and {"student", "step"} <= set(value[FAILED])
    )


def failure_of(*values: object) -> dict[str, Any] | None:
    """The first failure record among ``values``, or ``None`` when there is none."""
    for value in values:
        if is_failure(value):
            return dict(value)
    return None


def isolated(
    func: Callable[P, Any], *, student: str, step: str, outputs: int = 1
) -> Callable[P, Any]:
    """Wrap a node function of one student so that its failure stops only that student.

    The wrapper keeps ``func``'s name and signature (``functools.wraps``), which Kedro binds the
    node's inputs against.

    - An input that is a failure record (an earlier step of the student failed): the record is
      returned for every output and ``func`` is not called.
    - ``func`` raises an ``Exception``: it is logged at ERROR with its traceback, memory is
      released (:func:`~embedding_distillation.compute.release_memory`), and a new record is
      returned for every output.
    - ``KeyboardInterrupt``, ``SystemExit`` and other ``BaseException`` propagate; so does
      every exception under ``torchrun`` with several processes, where one rank going on while
      the others wait in a collective step would hang the job.

    Args:
        func: The node function.
        student: The student's name.
        step: The step's name for the record, e.g. ``train_student_model``.
        outputs: How many outputs the node declares: with more than one, the wrapper returns a
            tuple of that many records.

    Returns:
        The wrapped function.

    Raises:
        ValueError: When ``outputs`` is less than 1 (a node must save something, since Kedro
            refuses to save ``None``).
    """
    if outputs < 1:
        raise ValueError(
            f"isolated({step}): outputs must be at least 1, got {outputs!r}; a failure is "
            "saved in place of the node's outputs."
        )

    def result(record: dict[str, Any]) -> Any:
        if outputs == 1:
            return record
        return tuple(copy.deepcopy(record) for _ in range(outputs))

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        earlier = failure_of(*args, *kwargs.values())
        if earlier is not None:
            logger.info(
                "%s: %s skipped: %s",
                student,
                step,
                StudentFailure.from_record(earlier).describe(),
            )
            return result(earlier)
        value, failure = capture(student, step, func, *args, **kwargs)
        if failure is None:
            return value
        return result(failure.record())

    return wrapper


def capture(
    student: str, step: str, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> tuple[T | None, StudentFailure | None]:
    """Call ``fn(*args, **kwargs)`` for one student of the Python API, catching its failure.

    Failures are handled as in :func:`isolated` (logged, memory released, ``BaseException``
    and failures under ``torchrun`` with several processes re-raised); inputs are not checked
    for failure records.

    Args:
        student: The student's name.
        step: The step's name for the failure, e.g. ``train_student_model``.
        fn: The function to call.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        ``(result, None)``, or ``(None, failure)`` when ``fn`` raised an ``Exception``.
    """
    try:
        return fn(*args, **kwargs), None
    except Exception as error:
        if _several_processes():
            raise
        failure = StudentFailure.from_exception(student, step, error)
        logger.error("%s; the other students go on", failure.describe(), exc_info=error)
    # Outside the except block: the exception and the frames it holds (tensors) are gone.
    from embedding_distillation.compute import release_memory

    release_memory()
    return None, failure


def _several_processes() -> bool:
    from embedding_distillation import distributed

    return distributed.world_size() > 1


def _entries(students: object) -> dict[str, Mapping[str, Any]]:
    """The non-null entries of the ``students`` group, names and entries checked."""
    if students is None:
        return {}
    if not isinstance(students, Mapping):
        raise ValueError(
            f"students must be a mapping {{name: overrides of distillation}}, got "
            f"{students!r}; e.g. students: {{minilm: {{}}, static: {{student_type: static}}}}, "
            "or null for the single-student pipeline."
        )
    entries = {name: entry for name, entry in students.items() if entry is not None}
    seen: dict[str, str] = {}
    for name, entry in entries.items():
        _check_name(name)
        _check_entry(name, entry)
        if (other := seen.setdefault(name.lower(), name)) != name:
            raise ValueError(
                f"students: {other!r} and {name!r} differ only in case; their folders would be "
                "the same on a case-insensitive file system (macOS, Windows). Rename one."
            )
    return entries


def _check_name(name: object) -> None:
    if isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name):
        return
    if keyword.iskeyword(str(name)):
        raise ValueError(
            f"students: {name!r} is a Python keyword, not a usable name (it names a Kedro "
            f"namespace, datasets and folders); e.g. {_suggest(name)}"
        )
    raise ValueError(
        f"students: {name!r} is not a Python identifier (it names a Kedro namespace, datasets "
        f"and folders); use letters, digits and underscores, e.g. {_suggest(name)}"
    )


def _suggest(name: object) -> str:
    """An identifier close to ``name``: ``mini-lm`` -> ``mini_lm``, ``1st`` -> ``student_1st``."""
    text = re.sub(r"\W+", "_", str(name)).strip("_")
    if not text:
        return "minilm"
    if keyword.iskeyword(text):
        return f"{text}_"
    return text if text.isidentifier() else f"student_{text}"


def _check_entry(name: str, entry: object) -> None:
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"students.{name} must be a mapping of distillation keys to override, got "
            f"{entry!r}; {{}} trains the distillation parameters as they are, null leaves the "
            "student out."
        )


def _base_output_dir(base: Mapping[str, Any]) -> Any:
    if base.get("output_dir") is not None:
        return base["output_dir"]
    from embedding_distillation.training.config import EmbeddingTrainerConfig

    return EmbeddingTrainerConfig.__dataclass_fields__["output_dir"].default


def first_shared(
    configs: Mapping[str, "EmbeddingTrainerConfig"],
    value_of: Callable[["EmbeddingTrainerConfig"], object],
) -> tuple[tuple[str, str], object] | None:
    """The first two students with the same ``value_of`` (``None`` is never shared), and it."""
    owners: dict[object, str] = {}
    for name, config in configs.items():
        value = value_of(config)
        if value is None:
            continue
        if (other := owners.setdefault(value, name)) != name:
            return (other, name), value
    return None
