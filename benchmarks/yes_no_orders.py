"""Does summing Yes/No over the tool orders change whether a tool is used at the first step?

Usage:
    .venv/bin/python benchmarks/yes_no_orders.py [--adapter default|DIR] [--base GGUF_OR_DIR]
        [--splits evaluation/data/val_handwritten.json ...] [--orders 3] [--limit N] [--device cpu]
        [--out benchmarks/results/yes_no_orders.jsonl]
    .venv/bin/python benchmarks/yes_no_orders.py --summary benchmarks/results/yes_no_orders.jsonl

For each record, log P(Yes) - log P(No) after "Thought: Do I need to use a tool?" under each tool
order (``efe_langchain.decoding.tool_orders``), one JSON line per record (written as it goes, so a
cut run keeps what it did); the summary counts the first-step decisions that the sum over orders
turns right or wrong against the reference's (``ReActDecoder`` decides by that sum since session 9).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

from _common import resolve_model


def summary(rows: list[dict]) -> str:
    counts: dict = collections.defaultdict(collections.Counter)
    for r in rows:
        first, summed = r["margins"][0] > 0, sum(r["margins"]) > 0
        c = counts[r["split"]]
        c["n"] += 1
        c["first right"] += first == r["reference_yes"]
        c["orders right"] += summed == r["reference_yes"]
        c["fixed"] += first != r["reference_yes"] and summed == r["reference_yes"]
        c["broken"] += first == r["reference_yes"] and summed != r["reference_yes"]
    keys = ["n", "first right", "orders right", "fixed", "broken"]
    lines = ["| split | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    lines += [f"| {s} | " + " | ".join(str(c[k]) for k in keys) + " |" for s, c in counts.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=None, help="GGUF file or model folder (default: the embedded SmolLM2 GGUF)")
    p.add_argument("--adapter", default="default", help="'default' (the shipped adapter), a folder, or 'none'")
    p.add_argument("--splits", nargs="+", default=["evaluation/data/val_handwritten.json",
                                                   "evaluation/data/val_generated.json",
                                                   "evaluation/data/test_unseen.json"])
    p.add_argument("--orders", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="first N records of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results/yes_no_orders.jsonl")
    p.add_argument("--summary", default=None, help="only summarise a saved run's JSON lines")
    a = p.parse_args(argv)
    if a.summary:
        print(summary([json.loads(line) for line in Path(a.summary).read_text().splitlines() if line.strip()]))
        return 0

    from tqdm import tqdm

    from efe_langchain.evaluation.records import load_records, tool_choices
    from efe_langchain.finetune.adapter_eval import load_bare_llm
    from efe_langchain.react import THOUGHT_PREFIX

    base, adapter = resolve_model(a.base, a.adapter)
    decoder = load_bare_llm(base, adapter, a.device, tool_orders=a.orders).decoder
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with out.open("w") as f:
        for split in a.splits:
            for r in tqdm(load_records(split, limit=a.limit), desc=Path(split).stem, unit="rec"):
                margins = decoder.yes_no_margins_by_order(r.instruction, tool_choices(r.instruction))
                rows.append({"split": Path(split).stem, "id": r.key, "margins": margins,
                             "reference_yes": r.output.strip().startswith(THOUGHT_PREFIX + " Yes")})
                f.write(json.dumps(rows[-1]) + "\n")
                f.flush()
    print("command: python benchmarks/yes_no_orders.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
