"""Several processes (``torchrun``, ``accelerate launch``): who am I, and wait for the others.

``torchrun --nproc_per_node=K`` starts K copies of the same command and tells each its place
through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). This module reads those
variables, joins the process group once (NCCL for CUDA tensors with Gloo for Python objects on
GPUs, Gloo on CPUs), and offers the few collective steps the project needs: a barrier, a
broadcast of a Python object from rank 0, and "run this on rank 0 and tell everyone".

Without those variables (or with ``WORLD_SIZE=1``) every helper is a no-op for one process,
so callers need no special case. The Hugging Face trainer reads the same variables and joins
the same process group (or creates it first when training runs before any encoding).
"""

import logging
import os
import pickle
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Matches the Hugging Face trainer's ``ddp_timeout`` default: how long a rank waits for others.
TIMEOUT = timedelta(minutes=30)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ValueError(
            f"Environment variable {name}={value!r} is not an integer. It is set by torchrun / "
            "accelerate launch; unset it to run as a single process."
        ) from e


def world_size() -> int:
    """Number of processes in the run (``WORLD_SIZE``; 1 without torchrun)."""
    size = _env_int("WORLD_SIZE", 1)
    if size < 1:
        raise ValueError(f"WORLD_SIZE must be at least 1, got {size}.")
    return size


def rank() -> int:
    """This process's global rank, 0 to ``world_size() - 1`` (``RANK``; 0 without torchrun)."""
    value = _env_int("RANK", 0)
    size = world_size()
    if not 0 <= value < size:
        raise ValueError(
            f"RANK={value} is outside 0..{size - 1} (WORLD_SIZE={size}); launch with torchrun or "
            "unset RANK and WORLD_SIZE."
        )
    return value


def local_rank() -> int:
    """This process's rank on its machine, which is also its GPU index (``LOCAL_RANK``)."""
    return _env_int("LOCAL_RANK", 0)


def is_main() -> bool:
    """True on rank 0: the one process that writes shared files and talks to the Hub."""
    return rank() == 0


def describe() -> str:
    """``" (rank 1 of 2)"`` for log lines when several processes run, else ``""``."""
    size = world_size()
    return f" (rank {rank()} of {size})" if size > 1 else ""


def init(device: torch.device | str) -> None:
    """Join the process group once when several processes run; a no-op otherwise.

    Args:
        device: The device this process computes on (from
            :func:`~embedding_distillation.compute.resolve_device`); ``cuda`` pins this process to
            GPU ``LOCAL_RANK`` and uses NCCL for tensors, anything else uses Gloo.
    """
    size = world_size()
    if size == 1 or dist.is_initialized():
        return
    device_type = torch.device(device).type
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
        backend = "cuda:nccl,cpu:gloo"  # as accelerate does: objects and barriers go over Gloo
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=TIMEOUT)
    logger.info("Joined the process group%s with backend %s", describe(), backend)


def _group_ready() -> bool:
    if world_size() == 1:
        return False
    if not dist.is_initialized():
        raise RuntimeError(
            f"WORLD_SIZE={world_size()} but the process group is not initialised; call "
            "embedding_distillation.distributed.init(device) first."
        )
    return True


def barrier() -> None:
    """Wait until every process gets here (no-op for one process)."""
    if _group_ready():
        dist.barrier()


def broadcast_object(value: T | None) -> T:
    """Rank 0's ``value`` on every rank (pickled; other ranks pass ``None``)."""
    if not _group_ready():
        assert value is not None
        return value
    box: list[Any] = [value if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[no-any-return]


def all_gather_object(value: T) -> list[T]:
    """Every rank's ``value``, in rank order (``[value]`` for one process)."""
    if not _group_ready():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def on_main(function: Callable[[], T]) -> T:
    """Run ``function`` on rank 0 only and give its result to every rank.

    If it raises, every rank raises the same exception, so no rank is left waiting for a
    result that will never come.
    """
    if world_size() == 1:
        return function()
    outcome: tuple[bool, Any] | None = None
    error: Exception | None = None
    if is_main():
        try:
            outcome = (True, function())
        except Exception as e:
            error = e
            outcome = (False, e if _picklable(e) else RuntimeError(f"{type(e).__name__}: {e}"))
    ok, value = broadcast_object(outcome)
    if error is not None:
        raise error  # rank 0 keeps its own traceback
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def _picklable(value: object) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True
