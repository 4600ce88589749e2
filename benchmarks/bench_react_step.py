"""Speed of one ReAct step and of a whole agent turn: plain ``generate`` against EFE's decoder.

Usage:
    .venv/bin/python benchmarks/bench_react_step.py [--turns 8] [--max-new-tokens 30] [--adapter default|none|PATH]

Both sides run the embedded SmolLM2-135M-Instruct (fp32, CPU unless a GPU is there) on the same
GPT4Tools prompts (5 tools, ~730 tokens on the first turn, growing with the conversation):

* plain generate: ``model.generate`` on the whole prompt, greedy, stopping at the ReAct stop
  strings (what a generate-based agent does on every call);
* EFE: ``LocalLLM.react_step`` (constrained decoding: fixed text fed in one pass, tool names and
  image paths scored in one batched pass, the prompt's KV cache reused across calls and turns);
* EFE without prefix reuse (a fresh cache per call) isolates what the cache brings.

A turn is a tool-call step, then the step after the observation (the final answer). Turn 0 is a
warm-up for every method (its cold time is printed separately); p50/p95 are over the other turns.
Methods are interleaved per turn so load changes on a shared machine hit them alike. Peak memory
(max RSS) is measured in a fresh subprocess per method.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _common import machine, pct

TURNS = [
    "Detect the edges of the image",
    "What is in the picture?",
    "Generate a new image from the edges, a cat in the snow",
    "Describe the photo in detail",
    "Make the image look like a winter scene",
    "What color is the ball?",
    "Show me the canny edges once more",
    "What is the dog doing?",
    "Change the grass into sand",
    "Is there a person in the image?",
    "Describe the new image",
    "Thanks, that is all",
]
IMAGE = "image/ab12cd34.png"


class Clock:
    """Wall time and this process's CPU time of a block (CPU time shows the work done even when
    other jobs share the cores and stretch the wall time)."""

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w, time.process_time() - self.c


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build(args):
    from efe_langchain.decoding import ToolChoice
    from efe_langchain.llm import load_embedded_llm
    from efe_langchain.prompts import load_tool_specs

    adapter = None if args.adapter == "none" else args.adapter
    llm = load_embedded_llm(adapter=adapter, max_new_tokens=args.max_new_tokens)
    specs = list(load_tool_specs()[:5])
    return llm, specs, [ToolChoice.from_tool(s) for s in specs]


def prompts_for_turn(specs, i: int, scratchpad: str = "") -> str:
    from efe_langchain.react import render_history, render_image_turn, render_prompt

    history = [render_image_turn(IMAGE, "a dog on the grass next to a red ball")]
    pairs = []
    for j in range(i):
        pairs += [("Human", TURNS[j % len(TURNS)]), ("AI", f"Done: {TURNS[j % len(TURNS)].lower()}.")]
    if pairs:
        history.append(render_history(pairs))
    return render_prompt(specs, "\n".join(history), TURNS[i % len(TURNS)], scratchpad)


def scratch_from(step_text: str, names) -> str:
    """The scratchpad after the tool step (the model's own call, a made-up observation)."""
    from efe_langchain.react import ToolCall, parse, render_scratchpad

    call = parse(step_text, names)
    if isinstance(call, ToolCall):
        return render_scratchpad([(call.tool, call.tool_input, "image/3f2a1b0c.png")])
    return render_scratchpad([("Edge Detection On Image", IMAGE, "image/3f2a1b0c.png")])


def run_timing(args) -> dict:
    from efe_langchain.decoding import ReActDecoder
    from efe_langchain.react import STOP_SEQUENCES

    llm, specs, tools = build(args)
    names = [s.name for s in specs]
    tok = llm.tokenizer
    # Same decoding, but the cache is emptied before every call: prefill of the whole prompt each time.
    nocache = ReActDecoder(llm.model, tok, tool_orders=llm.tool_orders, order_confidence=llm.tool_order_confidence)
    # EFE scoring each tool choice under the prompt's own tool order only (its own cache, same calls).
    single = ReActDecoder(llm.model, tok, tool_orders=1)
    res = {k: [] for k in ("gen_tool", "gen_final", "gen_turn", "efe_tool", "efe_final", "efe_turn", "nocache_tool",
                           "single_tool")}
    cpu = {k: [] for k in res}
    gen_tokens = []
    prompt_tokens = []
    samples = {}
    cold = {}
    print(f"timing {args.turns} turns (+1 warm-up) ...", flush=True)
    for i in range(args.turns + 1):
        p_tool = prompts_for_turn(specs, i)
        prompt_tokens.append(len(tok(p_tool).input_ids))
        with Clock() as g1:
            g_tool = llm.generate_batch([p_tool], max_new_tokens=args.max_new_tokens, stop=STOP_SEQUENCES, progress=False)[0]
        with Clock() as e1:
            e_tool = llm.react_step(p_tool, tools)
        nocache.reset()
        with Clock() as n1:
            nocache.step(p_tool, tools, constrained=True, max_new_tokens=args.max_new_tokens)
        with Clock() as s1:
            single.step(p_tool, tools, constrained=True, max_new_tokens=args.max_new_tokens)
        p_final = prompts_for_turn(specs, i, scratch_from(e_tool, names))
        single.step(p_final, tools, constrained=True, max_new_tokens=args.max_new_tokens)
        with Clock() as g2:
            g_final = llm.generate_batch([p_final], max_new_tokens=args.max_new_tokens, stop=STOP_SEQUENCES, progress=False)[0]
        with Clock() as e2:
            e_final = llm.react_step(p_final, tools)
        gen_tokens.append(len(tok(g_tool, add_special_tokens=False).input_ids))
        if i == 0:
            cold = {"gen_tool": g1.wall, "efe_tool": e1.wall, "nocache_tool": n1.wall, "gen_final": g2.wall, "efe_final": e2.wall}
            samples = {"generate tool step": g_tool, "EFE tool step": e_tool, "generate final step": g_final, "EFE final step": e_final}
            continue
        for k, a, b in (("gen_tool", g1, None), ("gen_final", g2, None), ("gen_turn", g1, g2), ("efe_tool", e1, None),
                        ("efe_final", e2, None), ("efe_turn", e1, e2), ("nocache_tool", n1, None),
                        ("single_tool", s1, None)):
            res[k].append(a.wall + (b.wall if b else 0))
            cpu[k].append(a.cpu + (b.cpu if b else 0))
        print(f"  turn {i}: prompt {prompt_tokens[-1]} tok | generate tool {g1.wall:.2f}s final {g2.wall:.2f}s | "
              f"EFE tool {e1.wall:.2f}s final {e2.wall:.2f}s | EFE no-reuse tool {n1.wall:.2f}s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    return {"times": res, "cpu": cpu, "cold": cold, "samples": samples, "prompt_tokens": prompt_tokens,
            "generate_tool_tokens": gen_tokens, "stats": dict(llm.decoder.stats), "tool_orders": llm.tool_orders,
            "order_confidence": llm.tool_order_confidence}


def run_memory(args, method: str) -> None:
    """Child process: load, run 3 turns with one method, print max RSS."""
    from efe_langchain.react import STOP_SEQUENCES

    llm, specs, tools = build(args)
    names = [s.name for s in specs]
    loaded = _status_mb("VmRSS")
    try:
        # Reset the peak RSS so that it measures the steps, not the loading of the weights.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    for i in range(3):
        p = prompts_for_turn(specs, i)
        if method == "generate":
            llm.generate_batch([p], max_new_tokens=args.max_new_tokens, stop=STOP_SEQUENCES, progress=False)
            p2 = prompts_for_turn(specs, i, scratch_from("", names))
            llm.generate_batch([p2], max_new_tokens=args.max_new_tokens, stop=STOP_SEQUENCES, progress=False)
        else:
            step = llm.react_step(p, tools)
            llm.react_step(prompts_for_turn(specs, i, scratch_from(step, names)), tools)
    print(json.dumps({"after_load_mb": loaded, "peak_mb": _status_mb("VmHWM"),
                      "peak_incl_load_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=30,
                    help="cap for free text on both sides (30: the issue's reference measurement)")
    ap.add_argument("--adapter", default="none", help="'none' (base model), 'default' (shipped LoRA) or a path")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0: torch's default). On a busy shared machine 1 avoids OpenMP spin-waits")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-method peak memory subprocesses")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--memory-child", choices=["generate", "efe"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.memory_child:
        run_memory(args, args.memory_child)
        return 0

    print("command:", " ".join([os.path.relpath(sys.executable)] + sys.argv))
    print("machine:", machine(), flush=True)
    out = run_timing(args)
    mem = {}
    if not args.no_memory:
        for method in ("generate", "efe"):
            cmd = [sys.executable, __file__, "--memory-child", method, "--max-new-tokens", str(args.max_new_tokens),
                   "--adapter", args.adapter, "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            mem[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["memory"] = mem

    t = out["times"]
    pt = out["prompt_tokens"]
    print()
    print(f"model: SmolLM2-135M-Instruct fp32 (adapter: {args.adapter}); prompts {pt[0]}..{max(pt)} tokens; "
          f"max_new_tokens {args.max_new_tokens}; plain generate wrote {statistics.median(out['generate_tool_tokens']):.0f} tokens (median) per tool step")
    print(f"{'':37s}{'p50 s':>8s}{'p95 s':>8s}{'p50 CPU s':>11s}")
    rows = [
        ("tool step, plain generate", "gen_tool"),
        ("tool step, EFE", "efe_tool"),
        ("tool step, EFE without prefix reuse", "nocache_tool"),
        ("tool step, EFE with one tool order", "single_tool"),
        ("final step, plain generate", "gen_final"),
        ("final step, EFE", "efe_final"),
        ("turn (tool + final), generate", "gen_turn"),
        ("turn (tool + final), EFE", "efe_turn"),
    ]
    for label, key in rows:
        print(f"{label:37s}{pct(t[key], .5):8.3f}{pct(t[key], .95):8.3f}{pct(out['cpu'][key], .5):11.3f}")
    print(f"cold first call (warm-up turn): generate tool {out['cold']['gen_tool']:.2f}s, EFE tool {out['cold']['efe_tool']:.2f}s")
    r_tool = pct(t["gen_tool"], .5) / pct(t["efe_tool"], .5)
    r_turn = pct(t["gen_turn"], .5) / pct(t["efe_turn"], .5)
    r_nc = pct(t["gen_tool"], .5) / pct(t["nocache_tool"], .5)
    c = out["cpu"]
    print(f"speed-up p50 (wall): tool step x{r_tool:.1f} | whole turn x{r_turn:.1f} | tool step without prefix reuse x{r_nc:.1f}")
    print(f"speed-up p50 (CPU):  tool step x{pct(c['gen_tool'], .5) / pct(c['efe_tool'], .5):.1f} | "
          f"whole turn x{pct(c['gen_turn'], .5) / pct(c['efe_turn'], .5):.1f}")
    print(f"target: tool step >= x4 and <= 0.8 s p50 -> {'MET' if r_tool >= 4 and pct(t['efe_tool'], .5) <= 0.8 else 'NOT MET'}")
    print(f"EFE decoder: tool_orders {out['tool_orders']}, order gate {out['order_confidence']:g}; "
          f"tool choices that skipped the extra orders: {out['stats'].get('orders_skipped', 0)}")
    if mem:
        print(f"peak RSS during 3 turns (fresh process each, peak reset after loading): generate "
              f"{mem['generate']['peak_mb']:.0f} MB, EFE {mem['efe']['peak_mb']:.0f} MB "
              f"(RSS after load {mem['efe']['after_load_mb']:.0f} MB; peak while loading "
              f"{mem['efe']['peak_incl_load_mb']:.0f} MB)")
    print("sample outputs (warm-up turn):")
    for k, v in out["samples"].items():
        print(f"  {k}: {v!r}")
    print("machine at end:", machine())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
