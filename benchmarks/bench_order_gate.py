"""How much the extra tool orders buy, and what gating them on the first order's confidence costs.

Usage:
    .venv/bin/python benchmarks/bench_order_gate.py [--adapter default|DIR] [--base GGUF_OR_DIR]
        [--splits evaluation/data/val_generated.json ...] [--orders 3] [--limit N] [--device cpu]
        [--out benchmarks/results/order_gate]

For every record whose reference calls a tool first, it scores the listed tools under ``--orders``
listings (``ReActDecoder.tool_scores_by_order``) once, then replays the decision for each gate
``order_confidence`` (skip the other orders when the first order gives its pick at least that
probability): the first tool choice against the reference's, and the share of choices that skip
the extra prefills (their cost). Writes ``<out>.json``, ``<out>.md`` and ``<out>.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from _common import machine, resolve_model

GATES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def replay(rows: list[dict], gate: float) -> dict:
    """Accuracy of the first tool choice and share of skipped orders under ``gate`` (0: never skip)."""
    right = skipped = 0
    for r in rows:
        first = r["orders"][0]
        if gate and math.exp(max(first)) >= gate:
            skipped += 1
            total = first
        else:
            total = [sum(x) for x in zip(*r["orders"])]
        right += max(range(len(total)), key=total.__getitem__) == r["reference"]
    n = len(rows) or 1
    return {"gate": gate, "accuracy": 100.0 * right / n, "skipped": 100.0 * skipped / n}


def one_order(rows: list[dict]) -> float:
    right = sum(max(range(len(r["orders"][0])), key=r["orders"][0].__getitem__) == r["reference"] for r in rows)
    return 100.0 * right / (len(rows) or 1)


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib
    except ImportError:  # the GPU machine has none: redraw here with --from_json
        print(f"no matplotlib: {path} not drawn (run again with --from_json {path.with_suffix('.json')})")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for split, res in results.items():
        gates = [g for g in res["gates"] if g["gate"]]
        line, = ax.plot([g["skipped"] for g in gates], [g["accuracy"] for g in gates], marker="o", label=split)
        ax.axhline(res["one_order"], ls=":", color=line.get_color(), lw=1)  # one order: every choice skips
        for g in gates:
            ax.annotate(f"{g['gate']:g}", (g["skipped"], g["accuracy"]), fontsize=7, xytext=(2, 2),
                        textcoords="offset points")
    ax.set_xlabel("tool choices that skip the extra orders (%)")
    ax.set_ylabel("first tool choice right (%)")
    ax.set_title("Gating the extra tool orders on the first order's confidence\n(dotted: one order only)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_report(data: dict, out: Path) -> str:
    """``out``.json/.md/.png from one run's ``data`` (command, machine, orders, results); the table."""
    results = data["results"]
    for res in results.values():
        res["n"], res["one_order"] = len(res["rows"]), one_order(res["rows"])
        res["gates"] = [replay(res["rows"], g) for g in GATES]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=1))
    lines = [f"# Tool-order gate ({data['orders']} orders, adapter {data['adapter']})", "",
             f"command: `{data['command']}`", "", f"machine: {data['machine']}", "",
             f"time: {data['seconds']} s", "",
             "First tool choice right (%) / choices that skip the extra orders (%); gate 0 always consults them.", "",
             "| gate | " + " | ".join(f"{s} (n={r['n']}, one order {r['one_order']:.1f})" for s, r in results.items()) + " |",
             "|---|" + "---|" * len(results)]
    for i, g in enumerate(GATES):
        lines.append(f"| {g:g} | " + " | ".join(
            f"{r['gates'][i]['accuracy']:.1f} / {r['gates'][i]['skipped']:.0f}" for r in results.values()) + " |")
    table = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(table)
    plot(results, out.with_suffix(".png"))
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=None, help="GGUF file or model folder (default: the embedded SmolLM2 GGUF)")
    p.add_argument("--adapter", default="default", help="'default' (the shipped adapter), a folder, or 'none'")
    p.add_argument("--splits", nargs="+", default=["evaluation/data/val_handwritten.json",
                                                   "evaluation/data/test_unseen.json",
                                                   "evaluation/data/val_generated.json"])
    p.add_argument("--orders", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="first N tool records of each split")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="benchmarks/results/order_gate")
    p.add_argument("--from_json", default=None, help="redraw the table and plot of a saved run (no model)")
    a = p.parse_args(argv)
    if a.from_json:
        data = json.loads(Path(a.from_json).read_text())
        print(write_report(data, Path(a.out)))
        return 0

    from tqdm import tqdm

    from efe_langchain.evaluation.metrics import extract_steps
    from efe_langchain.evaluation.records import load_records, tool_choices
    from efe_langchain.finetune.adapter_eval import load_bare_llm

    base, adapter = resolve_model(a.base, a.adapter)
    llm = load_bare_llm(base, adapter, a.device, tool_orders=a.orders)
    decoder = llm.decoder
    command = "python benchmarks/bench_order_gate.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {}
    t0 = time.perf_counter()
    for split in a.splits:
        rows = []
        records = [r for r in load_records(split) if extract_steps(r.output).actions]
        for rec in tqdm(records[: a.limit] if a.limit else records, desc=Path(split).stem):
            tools = tool_choices(rec.instruction)
            names = [t.name for t in tools]
            ref = extract_steps(rec.output).actions[0]
            if len(tools) < 2 or ref not in names:
                continue
            orders = decoder.tool_scores_by_order(rec.instruction, tools)
            rows.append({"id": rec.id, "reference": names.index(ref), "orders": orders})
        results[Path(split).stem] = {"rows": rows}
    data = {"command": command, "machine": machine(), "adapter": adapter, "orders": a.orders,
            "seconds": round(time.perf_counter() - t0, 1), "results": results}
    print(write_report(data, Path(a.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
