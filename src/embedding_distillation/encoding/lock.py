"""One writer per shard folder: a lock that names its holder and never outlives it.

Two processes encoding into one folder would overwrite each other's manifest, or one would move
the folder away under the other. Before it writes, a run takes this lock on the folder:

- ``<folder>/.writer.lock`` is held with ``fcntl.flock``. The kernel releases it when its
  process ends, however it ends (``kill -9`` included), so a lock left by a killed run never
  blocks the rerun on the same host. ``filelock`` wraps the same call but cannot say who holds
  the lock, which the error message needs; hence this module.
- ``<folder>/.writer.json`` names the holder (pid, host, start time) and carries a heartbeat,
  refreshed every :data:`HEARTBEAT_S` seconds. It is what the error shows, and it covers hosts
  that do not share ``flock`` locks (NFS mounted without a lock manager): a record from another
  host whose heartbeat is younger than :data:`STALE_AFTER_S` counts as a live writer; an older
  one is a dead run's and is taken over.

Under ``torchrun`` only rank 0 takes the lock: the ranks of one job are one writer.
"""

import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".writer.lock"
OWNER_NAME = ".writer.json"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


class FolderInUseError(RuntimeError):
    """Another process is writing the folder."""


@dataclass(frozen=True)
class Owner:
    """Who holds a folder's lock."""

    pid: int
    host: str
    started: str  # ISO 8601, local time with offset
    heartbeat: float  # time.time() of the last refresh

    @classmethod
    def me(cls) -> "Owner":
        """This process, now."""
        now = time.time()
        started = datetime.datetime.fromtimestamp(now).astimezone().isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started, now)

    def describe(self) -> str:
        """``pid 123 on host-a, started 2026-12-01T10:00:00+00:00``."""
        return f"pid {self.pid} on {self.host}, started {self.started}"


def read_owner(folder: Path) -> Owner | None:
    """The holder recorded in ``folder``, or ``None`` (no record, or an unreadable one)."""
    try:
        return Owner(**json.loads((folder / OWNER_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_owner(folder: Path, owner: Owner) -> None:
    tmp = folder / f"{OWNER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(asdict(owner)))
    os.replace(tmp, folder / OWNER_NAME)


def _in_use(folder: Path, owner: Owner | None, *, other_host: bool) -> FolderInUseError:
    who = owner.describe() if owner else "a process that has not recorded its pid yet"
    if owner is None:
        stop = "Wait for it to finish"
    elif other_host:
        age = time.time() - owner.heartbeat
        stop = (
            f"Its last heartbeat was {age:.0f} s ago (a run that stops beating for "
            f"{STALE_AFTER_S:.0f} s is taken over). Wait for it to finish, or stop it on "
            f"{owner.host} (kill {owner.pid})"
        )
    else:
        stop = f"Wait for it to finish, or stop it (kill {owner.pid})"
    return FolderInUseError(
        f"{folder} is being written by another process ({who}). {stop}, then run the same "
        "command again: it continues after the last complete shard."
    )


class WriterLock:
    """The exclusive right to write one shard folder; release it (or use ``with``) when done.

    Args:
        folder: The folder (created if missing).
        heartbeat_s: Seconds between heartbeats.
    """

    def __init__(self, folder: str | os.PathLike[str], heartbeat_s: float = HEARTBEAT_S) -> None:
        self.folder = Path(folder)
        self._heartbeat_s = heartbeat_s
        self._fd: int | None = None
        self._owner: Owner | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def acquire(
        cls,
        folder: str | os.PathLike[str],
        heartbeat_s: float = HEARTBEAT_S,
        *,
        create: bool = True,
    ) -> "WriterLock":
        """Take the lock on ``folder`` at once, or fail.

        Args:
            folder: The folder.
            heartbeat_s: Seconds between heartbeats.
            create: Create the folder if it is missing (else ``FileNotFoundError``).

        Raises:
            FolderInUseError: A live process holds it (named in the message).
        """
        lock = cls(folder, heartbeat_s)
        lock._take(create)
        return lock

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def _take(self, create: bool) -> None:
        fd, previous = _claim(self.folder, create=create)
        me = Owner.me()
        if previous is not None and previous.pid != me.pid:
            logger.info(
                "Taking over %s from a run that stopped (%s)", self.folder, previous.describe()
            )
        self._fd, self._owner = fd, me
        _write_owner(self.folder, me)
        self._thread = threading.Thread(
            target=self._beat, name=f"writer-lock-heartbeat-{self.folder.name}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            if self._owner is None:
                return
            self._owner = Owner(self._owner.pid, self._owner.host, self._owner.started, time.time())
            with contextlib.suppress(OSError):  # the folder moved or vanished: the next beat
                _write_owner(self.folder, self._owner)

    def moved_to(self, folder: str | os.PathLike[str]) -> None:
        """Follow the folder after it was renamed (the descriptor keeps the lock)."""
        self.folder = Path(folder)

    def release(self) -> None:
        """Stop the heartbeat, remove the holder record and release the lock (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            (self.folder / OWNER_NAME).unlink()
        os.close(self._fd)  # the lock file itself stays: deleting it would race a new holder
        self._fd = None
        self._owner = None

    def __enter__(self) -> "WriterLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _claim(folder: Path, *, create: bool = True) -> tuple[int, Owner | None]:
    """Take the flock of ``folder``; return its descriptor and the previous holder's record.

    Raises:
        FolderInUseError: A live process holds the lock, or another host's record is fresh.
        FileNotFoundError: ``folder`` is missing and ``create`` is false.
    """
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _in_use(folder, read_owner(folder), other_host=False) from None
    previous = read_owner(folder)
    if (
        previous is not None
        and previous.host != socket.gethostname()
        and time.time() - previous.heartbeat < STALE_AFTER_S
    ):
        os.close(fd)  # closing the descriptor releases the flock
        raise _in_use(folder, previous, other_host=True)
    return fd, previous


def probe(folder: Path) -> FolderInUseError | None:
    """The error a writer of ``folder`` would get now, or ``None`` if it is free; takes nothing."""
    if not (folder / LOCK_NAME).exists():
        return None
    try:
        fd, _ = _claim(folder, create=False)
    except FileNotFoundError:
        return None
    except FolderInUseError as e:
        return e
    os.close(fd)
    return None
