"""Score a base model and a freshly trained adapter on our splits, right where it was trained.

The GPU machine has torch and transformers but not LangChain, so this drives the evaluation
package's runner and scorer (``efe_langchain.evaluation``) with ``BareLocalLLM``: the same greedy
batched generation and the same constrained ReAct decoder (``efe_langchain.decoding``) that
``efe_langchain.llm.LocalLLM`` uses, without the LangChain wrapper around them.

    python -m efe_langchain.finetune.adapter_eval --base MODEL.gguf --adapter DIR \\
        --split evaluation/data/val_handwritten.json --out runs/eval --decoding both

Constrained decoding runs one record at a time, so a GPU is mostly idle: launch several processes
(``torchrun --nproc_per_node 8 -m efe_langchain.finetune.adapter_eval ...``, more processes than GPUs is
fine: rank r uses GPU ``r % device_count``). Each rank predicts its share of every split into its own
store and rank 0 merges, scores and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from efe_langchain import react

__all__ = ["BareLocalLLM", "load_bare_llm", "evaluate_splits", "summary_report", "main"]


class BareLocalLLM:
    """``generate_batch`` / ``react_step`` / ``react_batch`` of LocalLLM over a model and tokenizer."""

    def __init__(self, model, tokenizer, max_new_tokens: int = 128, tool_orders: int = 1, order_confidence: float = 0.0):
        from efe_langchain.decoding import ReActDecoder

        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self._decoder = ReActDecoder(model, tokenizer, tool_orders=tool_orders, order_confidence=order_confidence)

    @property
    def decoder(self):
        """The ReActDecoder, as ``LocalLLM.decoder``."""
        return self._decoder

    def generate_batch(self, prompts: Sequence[str], *, max_new_tokens: int | None = None,
                       stop: Sequence[str] = react.STOP_SEQUENCES, batch_size: int = 8, progress: bool = False) -> list[str]:
        from efe_langchain.decoding import generate_batch

        return generate_batch(self.model, self.tokenizer, prompts, eos_ids=self._decoder.eos_ids,
                              max_new_tokens=max_new_tokens or self.max_new_tokens, stop=stop, batch_size=batch_size)

    def react_step(self, prompt, tools, image_paths=None, constrained: bool = True) -> str:
        return self._decoder.step(prompt, tools, image_paths, constrained=constrained, max_new_tokens=self.max_new_tokens)

    def react_batch(self, prompts, tools_per_prompt, images_per_prompt=None, constrained: bool = True,
                    batch_size: int = 8, progress: bool = False) -> list[str]:
        images = images_per_prompt or [None] * len(prompts)
        return [self.react_step(p, t, i, constrained) for p, t, i in zip(prompts, tools_per_prompt, images)]


def load_bare_llm(base: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
                  tool_orders: int = 1, order_confidence: float = 0.0) -> BareLocalLLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        from efe_langchain.evaluation.run import dist_info

        # Several ranks may share one GPU (constrained decoding leaves it mostly idle).
        device = f"cuda:{dist_info()[2] % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bf16" if device.startswith("cuda") else "fp32"
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    src, gguf = base, None
    if base.endswith(".gguf"):
        src, gguf = str(Path(base).parent), Path(base).name
    kw = {"gguf_file": gguf} if gguf else {}
    tok = AutoTokenizer.from_pretrained(src, **kw)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype, **kw).to(device)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return BareLocalLLM(model, tok, tool_orders=tool_orders, order_confidence=order_confidence)


def evaluate_splits(llm, splits: Sequence[str], out: str | Path, decodings: Sequence[str] = ("free", "constrained"),
                    label: str = "model", limit: int | None = None, batch_size: int = 32) -> dict:
    """``{split: {decoding: overall metrics}}``; predictions and metrics land under ``out``."""
    from efe_langchain.evaluation.records import load_records
    from efe_langchain.evaluation.run import dist_info, evaluate_runner, score_predictions
    from efe_langchain.evaluation.runners import LocalRunner

    out = Path(out)
    rank, world, _ = dist_info()
    result: dict = {}
    for split in splits:
        records = load_records(split, limit)
        name = Path(split).stem
        for dec in decodings:
            folder = out / f"{label}@{dec}" / name
            t0 = time.perf_counter()
            runner = LocalRunner(llm, decoding=dec, batch_size=batch_size, max_new_tokens=llm.max_new_tokens)
            res = evaluate_runner(runner, records, folder, rank=rank, world_size=world, progress=True,
                                  desc=f"{label}@{dec} {name}")
            if rank != 0:
                continue  # rank 0 merges every rank's predictions and scores them
            metrics = score_predictions(records, {k: v["output"] for k, v in res["predictions"].items()})
            metrics["elapsed_s"] = round(time.perf_counter() - t0, 1)
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
            result.setdefault(name, {})[dec] = dict(metrics["overall"], n=metrics["n_scored"], elapsed_s=metrics["elapsed_s"])
            print(f"[{label}] {name} {dec}: " + json.dumps(result[name][dec]), flush=True)
    return result


def summary_report(folder: str | Path) -> tuple[Path, Path]:
    """``summary.md`` (one table per decoding: models x splits) and ``summary.png`` (SR bars) from
    every ``summary_<label>.json`` in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    runs = {p.stem[len("summary_"):]: json.loads(p.read_text()) for p in sorted(folder.glob("summary_*.json"))}
    if not runs:
        raise FileNotFoundError(f"no summary_*.json in {folder}")
    splits = list(dict.fromkeys(s for r in runs.values() for s in r))
    decs = [d for d in ("constrained", "free") if any(d in r.get(s, {}) for r in runs.values() for s in splits)]
    lines = [f"# Scores of {', '.join(runs)} (percent, EVAL_FORMAT.md; strict needs the exact image path)", ""]
    for dec in decs:
        lines += [f"## {dec} decoding", "", "| model | split | n | SR_t | SR_act | SR_args | SR | strict |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        for label, r in runs.items():
            for split in splits:
                m = r.get(split, {}).get(dec)
                if m:
                    lines.append(f"| {label} | {split} | {m['n']} | " + " | ".join(
                        f"{m[k]:.1f}" for k in ("SR_t", "SR_act", "SR_args", "SR", "strict")) + " |")
        lines.append("")
    md = folder / "summary.md"
    md.write_text("\n".join(lines), encoding="utf-8")

    fig, axes = plt.subplots(1, len(decs), figsize=(5.5 * len(decs), 3.8), squeeze=False)
    width = 0.8 / len(runs)
    for ax, dec in zip(axes[0], decs):
        for i, (label, r) in enumerate(runs.items()):
            xs = [j + (i - (len(runs) - 1) / 2) * width for j in range(len(splits))]
            ys = [r.get(s, {}).get(dec, {}).get("SR") for s in splits]
            # A run that was not measured gets no bar (a bar at 0 would read as a score of 0).
            have = [(x, y) for x, y in zip(xs, ys) if y is not None]
            bars = ax.bar([x for x, _ in have], [y for _, y in have], width, label=label, color=f"C{i}")
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
            for x, y in zip(xs, ys):
                if y is None:
                    ax.text(x, 1, "n/a", ha="center", va="bottom", fontsize=6, rotation=90, color=f"C{i}")
        ax.set_xticks(range(len(splits)), splits, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_title(f"SR, {dec} decoding")
        ax.set_ylabel("percent")
    # Handles from a panel where every run has bars (an empty bar set has no colour of its own).
    panel = max(axes[0], key=lambda a: len(a.get_legend_handles_labels()[0]) and sum(len(c) for c in a.containers))
    axes[0][-1].legend(*panel.get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    png = folder / "summary.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return md, png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["report"]:
        # python -m efe_langchain.finetune.adapter_eval report FOLDER: tables and chart of its summaries
        for path in summary_report(argv[1] if len(argv) > 1 else "."):
            print(path)
        return 0
    p.add_argument("--base", required=True, help="model folder or .gguf file")
    p.add_argument("--adapter", default=None)
    p.add_argument("--label", default=None)
    p.add_argument("--split", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--decoding", choices=["free", "constrained", "both"], default="both")
    p.add_argument("--limit", type=int, default=None, help="first N records of each split")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_new_tokens", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--tool_orders", type=int, default=1,
                   help="constrained decoding: score each tool choice under this many orders of the tool list")
    p.add_argument("--order_confidence", type=float, default=0.0,
                   help="skip the other tool orders when the first gives its pick this probability (0: never)")
    a = p.parse_args(argv)
    llm = load_bare_llm(a.base, a.adapter, a.device, a.dtype, a.tool_orders, a.order_confidence)
    llm.max_new_tokens = a.max_new_tokens
    decs = ["free", "constrained"] if a.decoding == "both" else [a.decoding]
    label = a.label or ("adapter" if a.adapter else "base")
    res = evaluate_splits(llm, a.split, a.out, decs, label, a.limit, a.batch_size)
    from efe_langchain.evaluation.run import dist_info

    if dist_info()[0] != 0:
        return 0
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"summary_{label}.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
