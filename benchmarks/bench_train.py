"""Training throughput in real (non-padding) tokens per second: the batching modes of
``efe_langchain.finetune.train`` on the same model and data, in one run.

Modes (each a few optimizer steps after a warm-up, same LoRA r/targets, bf16 on a GPU):
  pad2048  every sample padded to 2048 tokens (the GPT4Tools v2 recipe)
  grouped  padded to the longest sample of the micro batch, length-grouped sampler (our default)
  packed   padding-free rows with restarting position ids (flash-attn varlen if installed,
           else SDPA with a block-diagonal mask)

    python benchmarks/bench_train.py --base_model MODEL(.gguf) --data train.json [--steps 12]
    torchrun --nproc_per_node 2 benchmarks/bench_train.py ...   # the same on 2 GPUs

Prints one JSON object with the machine, the command, per-mode tokens/s and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def _run(mode: str, a) -> dict:
    from efe_langchain.finetune.train import build_parser, train

    argv = ["--base_model", a.base_model, "--data_path", a.data, "--output_dir", os.path.join(a.workdir, mode),
            "--batch_size", str(a.micro_batch_size * a.accumulation), "--micro_batch_size", str(a.micro_batch_size),
            "--max_steps", str(a.steps), "--lora_r", str(a.lora_r), "--lora_alpha", str(a.lora_r),
            "--max_samples", str(a.samples), "--logging_steps", "1000", "--quiet", "--no_plot", "--warmup_ratio", "0"]
    if mode == "pad2048":
        argv += ["--pad_to_cutoff", "--cutoff_len", "2048"]
    elif mode == "grouped":
        argv += ["--group_by_length"]
    elif mode == "packed":
        argv += ["--packing"]
    else:
        raise ValueError(mode)
    if a.gradient_checkpointing:
        argv.append("--gradient_checkpointing")
    s = train(build_parser().parse_args(argv))
    return {k: s[k] for k in ("real_tokens", "token_slots", "train_s", "real_tokens_per_s", "steady_real_tokens_per_s",
                              "optimizer_steps", "world_size", "device")}


def _run_safely(mode: str, a) -> dict:
    """One mode's figures, or its error: a mode that fails must not take the others' results with it."""
    try:
        return _run(mode, a)
    except Exception as exc:  # reported in the JSON, next to the modes that ran
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base_model", required=True)
    p.add_argument("--data", required=True, help="GPT4Tools-format JSON (e.g. from efe finetune data)")
    p.add_argument("--modes", nargs="+", default=["pad2048", "grouped", "packed"])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--micro_batch_size", type=int, default=16)
    p.add_argument("--accumulation", type=int, default=1)
    p.add_argument("--samples", type=int, default=4000)
    p.add_argument("--lora_r", type=int, default=32)
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--workdir", default="/tmp/efe_bench_train")
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args(argv)
    res = {m: _run_safely(m, a) for m in a.modes}
    rank = int(os.environ.get("RANK", 0))
    if rank:
        return 0
    key = "steady_real_tokens_per_s"
    base = res.get("pad2048", {}).get(key)
    report = {
        "machine": f"{platform.node()} {platform.machine()} / "
                   + next((r["device"] for r in res.values() if "device" in r), "?"),
        "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
        "micro_batch_size": a.micro_batch_size, "steps": a.steps, "lora_r": a.lora_r,
        "modes": res,
        "speedup_vs_pad2048": {m: round(r[key] / base, 2) for m, r in res.items() if r.get(key)} if base else None,
        "note": "steady_real_tokens_per_s: after the first 2 optimizer steps, all ranks together; "
                "train_s and real_tokens_per_s include the start-up; real tokens exclude padding",
    }
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
