"""Evaluation throughput: the local runner batched against batch size 1 (GPT4Tools' inference script).

Usage:
    .venv/bin/python benchmarks/bench_eval.py [--records 8] [--batch-size 8] [--max-new-tokens 32]
        [--decoding free] [--model embedded:noadapter] [--device cpu|cuda] [--annotations FILE]
        [--base MODEL_DIR_OR_GGUF [--adapter DIR]]   # torch + transformers only (GPU machines)

Both runs use the same model, the same first N records of the annotation file (default: the
shipped sample_eval.json) and the whole harness (rollout with reference observations, JSONL
store); only ``batch_size`` differs. One run each, in the same process, batched first, after a
one-record warm-up. Prints the machine, the command, records/second of each and the ratio, and how
many predictions came out identical (left padding can change a greedy continuation slightly) and
the scores of both runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time


def machine(device: str) -> str:
    import torch

    parts = [platform.platform(), f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"{os.cpu_count()} cpus", f"torch threads {torch.get_num_threads()}"]
    if device.startswith("cuda") and torch.cuda.is_available():
        parts.append(torch.cuda.get_device_name(torch.device(device)))
    try:
        parts.append("load avg %.1f %.1f %.1f" % os.getloadavg())
    except OSError:
        pass
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--annotations", default=None)
    p.add_argument("--model", default="embedded:noadapter")
    p.add_argument("--records", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--decoding", choices=("free", "constrained"), default="free")
    p.add_argument("--device", default="cpu")
    p.add_argument("--base", default=None,
                   help="a model folder or .gguf loaded without LangChain (finetune.adapter_eval.load_bare_llm), "
                        "for GPU machines that have torch and transformers only; --model is then ignored")
    p.add_argument("--adapter", default=None, help="with --base: a LoRA adapter folder")
    args = p.parse_args(argv)

    from efe_langchain.evaluation.records import load_records
    from efe_langchain.evaluation.run import evaluate_runner, load_local_llm, parse_model_spec, score_predictions
    from efe_langchain.evaluation.runners import LocalRunner, RolloutState
    from efe_langchain.evaluation.sample import sample_eval_path

    print("command:", " ".join([sys.executable, *sys.argv]))
    print("machine:", machine(args.device))
    records = load_records(args.annotations or sample_eval_path(), args.records)
    t = time.perf_counter()
    if args.base:
        from efe_langchain.finetune.adapter_eval import load_bare_llm

        llm = load_bare_llm(args.base, args.adapter, args.device)
        name = args.base + (f" + {args.adapter}" if args.adapter else "") + " (bare)"
    else:
        llm = load_local_llm(parse_model_spec(args.model), args.device)
        name = llm.model_name
    print(f"model: {name} on {args.device} (loaded in {time.perf_counter() - t:.1f} s)")
    print(f"records: {len(records)}, decoding: {args.decoding}, max_new_tokens per step: {args.max_new_tokens}")

    # warm-up: first-call costs (allocations, kernels) hit neither measured run
    LocalRunner(llm, decoding=args.decoding, batch_size=1, max_new_tokens=4).step(
        [RolloutState(records[0])]
    )
    results = {}
    outputs = {}
    for bs in (args.batch_size, 1):
        runner = LocalRunner(llm, decoding=args.decoding, batch_size=bs, max_new_tokens=args.max_new_tokens)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = evaluate_runner(runner, records, tmp, progress=False)
            dt = time.perf_counter() - t
        results[bs] = dt
        outputs[bs] = {k: v["output"] for k, v in res["predictions"].items()}
        print(f"batch_size={bs:<3d} {dt:8.1f} s  {len(records) / dt:7.3f} records/s")
    same = sum(outputs[1][k] == outputs[args.batch_size][k] for k in outputs[1])
    print(f"speed-up batched (bs={args.batch_size}) vs bs=1: {results[1] / results[args.batch_size]:.2f}x; "
          f"identical predictions: {same}/{len(records)}")
    # Where predictions differ (bf16 on a GPU: a left-padded row is not bit-identical to a lone one),
    # the scores say whether it matters.
    for bs in (args.batch_size, 1):
        m = score_predictions(records, outputs[bs])["overall"]
        print(f"scores batch_size={bs:<3d} " + "  ".join(f"{k} {m[k]:.1f}" for k in ("SR_t", "SR_act", "SR_args", "SR")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
