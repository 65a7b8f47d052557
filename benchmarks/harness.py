"""What the benchmark scripts share: paths, child processes, measurements, the machine.

Every benchmark runs each measured job in a child process (the same script, ``--child SPEC``),
so that peak RSS and thread counts are the job's own. The parent starts children with
:func:`run_child`; a child runs :func:`child_main`, which prints one ``BENCH_RESULT`` JSON line.
This module imports only the standard library at the top: the distil-trainer venv runs the
children of ``encode.py`` and ``train.py`` too.
"""

import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
WORK = BENCH_DIR / ".work"
RUNS = WORK / "runs"
DEFAULT_CORPUS = ROOT / "data" / "01_raw" / "corpus" / "demo_corpus.parquet"
DEFAULT_TEACHER = ROOT / "data" / "01_raw" / "models" / "all-mpnet-base-v2"
DISTIL_VENV = WORK / "venv-distil"
DISTIL_PYTHON = DISTIL_VENV / "bin" / "python"
DISTIL_REQUIREMENTS = ["torch==2.13.0", "distil-trainer==0.1.27", "sentence-transformers<5.4"]

RESULT_PREFIX = "BENCH_RESULT "
FINAL_COLUMN = "teacher_embedding_final"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def package_versions(names: list[str]) -> dict[str, str]:
    """Installed versions of ``names`` (distribution names)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def child_main(spec: dict[str, Any], jobs: dict[str, Any]) -> None:
    """Run one of ``jobs`` with the requested thread count; print its result as a JSON line."""
    import torch

    torch.set_num_threads(spec["threads"])
    result = jobs[spec["job"]](spec)
    result["peak_rss_mb"] = peak_rss_mb()
    result["torch_threads"] = torch.get_num_threads()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


class ChildFailedError(RuntimeError):
    """A child process exited with an error; the message holds its stderr tail."""


def child_env(threads: int, run_dir: Path) -> dict[str, str]:
    """Environment of a child: fixed thread counts, offline Hub, a private datasets cache."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["RAYON_NUM_THREADS"] = str(threads)  # the Rust tokenizers' thread pool
    env["HF_HUB_OFFLINE"] = "1"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["HF_DATASETS_CACHE"] = str(run_dir / "hf-cache")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_command(
    python: Path | str, spec: dict[str, Any], script: Path | None = None
) -> list[str]:
    """Command line that runs ``script`` (default: the running script) as a child for ``spec``."""
    script = script or Path(sys.argv[0]).resolve()
    return [str(python), str(script), "--child", json.dumps(spec)]


def fresh_dir(path: Path) -> Path:
    """Delete ``path`` if it exists and create it empty."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def stderr_tail(run_dir: Path, lines: int = 15) -> str:
    """The last lines of a child's stderr log."""
    path = run_dir / "stderr.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start_child(
    name: str,
    spec: dict[str, Any],
    threads: int,
    python: Path | str,
    *,
    script: Path | None = None,
    runs: Path = RUNS,
    wrap: list[str] | None = None,
) -> Any:
    """Start ``script`` (default: the running script) as a child; logs go to ``runs/<name>/``.

    ``wrap``: a command prefix the child's command line is appended to (e.g. a shell that joins
    a cgroup and then ``exec``s it).
    """
    run_dir = fresh_dir(runs / name)
    spec = {**spec, "threads": threads}
    with open(run_dir / "stdout.log", "w") as out, open(run_dir / "stderr.log", "w") as err:
        return subprocess.Popen(
            [*(wrap or []), *child_command(python, spec, script)],
            stdout=out,
            stderr=err,
            env=child_env(threads, run_dir),
            cwd=ROOT,
        )


def read_child_result(name: str, returncode: int, runs: Path = RUNS) -> dict[str, Any]:
    """Parse the result line a finished child printed, or raise with its stderr tail."""
    run_dir = runs / name
    if returncode != 0:
        raise ChildFailedError(
            f"{name} exited with code {returncode}; stderr tail:\n{stderr_tail(run_dir)}"
        )
    for line in reversed((run_dir / "stdout.log").read_text().splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise ChildFailedError(f"{name} printed no result line; stderr tail:\n{stderr_tail(run_dir)}")


def run_child(
    name: str,
    spec: dict[str, Any],
    threads: int,
    python: Path | str = sys.executable,
    *,
    script: Path | None = None,
    runs: Path = RUNS,
    wrap: list[str] | None = None,
) -> dict[str, Any]:
    """Run a child (``script``, default the running script) to completion; return its result."""
    print(f"  running {name} ...", flush=True)
    process = start_child(name, spec, threads, python, script=script, runs=runs, wrap=wrap)
    process.wait()
    result = read_child_result(name, process.returncode, runs)
    if "seconds" in result:
        rows = f"{result['rows']} rows in " if "rows" in result else ""
        print(f"    {rows}{result['seconds']:.1f} s", flush=True)
    return result


def bytes_on_disk(path: Path) -> int:
    """Total size of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ensure_distil_venv() -> None:
    """Create ``.work/venv-distil`` with distil-trainer 0.1.27 unless it already imports."""
    check = [str(DISTIL_PYTHON), "-c", "import distil_trainer"]
    if (
        DISTIL_PYTHON.exists()
        and subprocess.run(check, check=False, capture_output=True).returncode == 0
    ):
        return
    print(f"  creating {DISTIL_VENV} (pip install {' '.join(DISTIL_REQUIREMENTS)}) ...")
    shutil.rmtree(DISTIL_VENV, ignore_errors=True)
    steps = [
        ["python3.11", "-m", "venv", str(DISTIL_VENV)],
        [str(DISTIL_PYTHON), "-m", "pip", "install", "-q", *DISTIL_REQUIREMENTS],
        check,
    ]
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).splitlines()[-10:])
            raise ChildFailedError(f"`{shlex.join(step)}` failed:\n{tail}")


def fmt(value: float | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals and thousands separators, or ``n/a``."""
    return "n/a" if value is None else f"{value:,.{digits}f}"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """1-, 5- and 15-minute load averages."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())
