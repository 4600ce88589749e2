"""Keep new training phrasings away from the validation phrasings they would leak into.

val_generated.json must ask in words that training does not use (issue 7), so a phrasing written
for training is dropped when it is too close to any val phrasing of the same pool: the same words,
a shared word 3-gram with a content word in it, two shared content words, or half of its own
content words found in one val phrasing. A tool's own words (its names and description, which every prompt shows) do
not count as content words for its phrasings. Placeholders (``{img}``, ``{x}``) end a run of words.

    python -m finetune.val_overlap synthetic NEW.tsv     # family<TAB>p1 ;; p2 ... -> kept / dropped
    python -m finetune.val_overlap no_tool NEW.txt       # request || answer lines
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# Words that tell nothing about which job is asked for.
STOPWORDS = frozenset(
    "a an the and or but of to in on at for by with from into onto as is are was were be been it its this that "
    "these those my me i you your we our us can could would will should please just so do does did make made "
    "give get let want need like some more any all one two what which how why when where who there here "
    "image images photo photos picture pictures pic shot file upload version look looks kindly hoping "
    "mind chance know if not no yes up out off over show use put only way turn take have has had "
    "what's it's i'm don't can't".split()
)


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` without placeholders."""
    return re.findall(r"[a-z0-9']+", re.sub(r"\{\w+\}", " ", text.lower()))


def content_words(text: str, own: frozenset[str] = frozenset()) -> set[str]:
    """Words that say what is asked, less ``own`` (the tool's own vocabulary)."""
    return {w for w in words(text) if w not in STOPWORDS and w not in own and len(w) > 2}


def _trigrams(text: str, own: frozenset[str]) -> set[tuple[str, ...]]:
    out = set()
    for run in re.split(r"\{\w+\}", text.lower()):
        ws = words(run)
        out.update(g for g in zip(ws, ws[1:], ws[2:]) if content_words(" ".join(g), own))
    return out


def too_close(candidate: str, val: Iterable[str], own: Iterable[str] = ()) -> str | None:
    """Why ``candidate`` is too close to one of ``val`` (the first reason found), or None.

    ``own``: words of the tool's names and description, which do not make two phrasings close.
    """
    own = frozenset(own)
    grams, cw = _trigrams(candidate, own), content_words(candidate, own)
    same = words(candidate)
    for v in val:
        if words(v) == same:
            return f"the same words as {v!r}"
        shared = _trigrams(v, own) & grams
        if shared:
            return f"3-gram {' '.join(next(iter(shared)))!r} of {v!r}"
        common = cw & content_words(v, own)
        if len(common) >= 2 or (cw and 2 * len(common) >= len(cw)):
            return f"words {sorted(common)} of {v!r}"
    return None


def keep_far(candidates: Sequence[str], val: Sequence[str], own: Iterable[str] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """``candidates`` split into those far from ``val`` and ``(dropped, reason)`` pairs."""
    kept, dropped = [], []
    for c in candidates:
        reason = too_close(c, val, own)
        (dropped.append((c, reason)) if reason else kept.append(c))
    return kept, dropped


def own_words(family) -> frozenset[str]:
    """The words a prompt shows for a synthetic family: its names, gist and examples."""
    return frozenset(words(" ".join((*family.names, family.gist, *family.likes))))


def _main(argv: Sequence[str] | None = None) -> int:
    from evaluation.records import split_instruction
    from finetune.phrasings import load_no_tool_examples
    from finetune.synthetic_tools import load_synthetic_families

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pool", choices=["synthetic", "no_tool"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--extra-val", type=Path, action="append", default=[],
                    help="an evaluation file whose requests count as val too (e.g. val_handwritten.json)")
    a = ap.parse_args(argv)
    extra = [split_instruction(r["instruction"]).input for p in a.extra_val for r in json.loads(p.read_text())]
    lines = [ln for ln in a.path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    n_kept = n_dropped = 0
    if a.pool == "synthetic":
        families = {f.family: f for f in load_synthetic_families()}
        for ln in lines:
            family, _, rest = ln.partition("\t")
            if family not in families:
                print(f"unknown family {family!r}", file=sys.stderr)
                return 2
            f = families[family]
            kept, dropped = keep_far([p.strip() for p in rest.split(";;") if p.strip()], list(f.val) + extra,
                                     own_words(f))
            n_kept, n_dropped = n_kept + len(kept), n_dropped + len(dropped)
            print(f"{family}\t{' ;; '.join(kept)}")
            for c, why in dropped:
                print(f"# dropped {family}: {c!r} ({why})", file=sys.stderr)
    else:
        val = [e.request for e in load_no_tool_examples()["val"]] + extra
        for ln in lines:
            kept, dropped = keep_far([ln.split(" || ")[0]], val)
            if kept:
                print(ln)
                n_kept += 1
            else:
                n_dropped += 1
                print(f"# dropped: {ln!r} ({dropped[0][1]})", file=sys.stderr)
    print(f"# kept {n_kept}, dropped {n_dropped}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
