"""What the chat-model and agent layers cost on top of one ReAct step.

Usage:
    .venv/bin/python benchmarks/bench_agent_turn.py [--turns 6] [--tiny] [--max-new-tokens 24]

Three ways to run the same conversation, in one process, methods interleaved per turn so that load
on a shared machine hits them alike:

* ``react_step``: ``LocalLLM.react_step`` on prompts rendered by hand (the floor);
* ``ChatEFE``: ``ChatEFE.invoke`` on the message lists that render to exactly those prompts
  (adds message rendering, parsing, usage counting);
* ``agent``: a whole ``EFEAgent.invoke`` turn (LangGraph, in-memory checkpointer, middleware,
  the real Edge Detection tool on a workspace image); it makes as many model calls as the model
  asks for, so it is reported per turn and per model call.

Prints p50/p95 per method and the ratios to ``react_step``, the machine, the load average and the
command. ``--tiny`` uses a random tiny Llama (for a quick check of the script, not for numbers).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

from _common import pct

QUESTIONS = [
    "Detect the edges of the image",
    "What is in the picture?",
    "Show me the canny edges once more",
    "Describe the photo in detail",
    "Is there a person in the image?",
    "Thanks, that is all",
    "Find the outlines of the picture",
    "What color is the box?",
]


def make_timer():
    from langchain.agents.middleware import AgentMiddleware

    class Timer(AgentMiddleware):
        """Innermost middleware: times the chat model call and the tool run alone."""

        def __init__(self) -> None:
            super().__init__()
            self.model = 0.0
            self.tool = 0.0

        def wrap_model_call(self, request, handler):
            t = time.perf_counter()
            try:
                return handler(request)
            finally:
                self.model += time.perf_counter() - t

        def wrap_tool_call(self, request, handler):
            t = time.perf_counter()
            try:
                return handler(request)
            finally:
                self.tool += time.perf_counter() - t

    return Timer()


def load_llm(args):
    from efe_langchain.llm import LocalLLM, load_embedded_llm

    if args.tiny:
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
        from conftest import build_tiny_lm
        from transformers import AutoTokenizer

        from efe_langchain.embedded import embedded_tokenizer_dir

        tok = AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir()))
        return LocalLLM.from_model(build_tiny_lm(tok), tok, max_new_tokens=args.max_new_tokens)
    return load_embedded_llm(adapter=None if args.adapter == "none" else args.adapter, max_new_tokens=args.max_new_tokens)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--adapter", default="default", help="embedded model adapter: default, none or a folder")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()

    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from PIL import Image, ImageDraw

    from efe_langchain import react
    from efe_langchain.agent import EFEAgent, image_turn_messages
    from efe_langchain.chat_model import ChatEFE, messages_to_prompt, to_react_tool
    from efe_langchain.decoding import ToolChoice
    from efe_langchain.llm import LocalLLM
    from efe_langchain.tools.registry import load_tools
    from efe_langchain.workspace import Workspace

    t0 = time.perf_counter()
    llm = load_llm(args)
    print(f"model: {llm.model_name} (loaded in {time.perf_counter() - t0:.1f} s)", flush=True)

    root = tempfile.mkdtemp(prefix="efe-bench-")
    ws = Workspace(root)
    tools = load_tools("Image2Canny_cpu,Image2Line_cpu,Image2Hed_cpu,Segmenting_cpu,Text2Box_cpu", workspace=ws)
    img = Image.new("RGB", (512, 384), "white")
    ImageDraw.Draw(img).rectangle([120, 90, 380, 290], fill="blue")
    image = ws.add_image(img)
    upload = image_turn_messages(image, "a blue box on a white background.")
    rtools = [to_react_tool(t) for t in tools]
    choices = [ToolChoice(t.react_name, t.n_args, t.takes_image) for t in rtools]
    # One LocalLLM per method over the same weights: each keeps its own prefix cache across
    # turns, as it would in real use, and no method warms the cache for another.
    step_llm = LocalLLM.from_model(llm.model, llm.tokenizer, max_new_tokens=args.max_new_tokens)
    chat = ChatEFE(llm=LocalLLM.from_model(llm.model, llm.tokenizer, max_new_tokens=args.max_new_tokens)).bind_tools(tools)
    timer = make_timer()
    agent = EFEAgent(model=ChatEFE(llm=llm), tools=tools, workspace=ws, max_tool_steps=3, middleware=[timer])
    agent.upload(img, thread_id="bench", caption="a blue box on a white background.")

    times: dict[str, list[float]] = {k: [] for k in ("react_step", "ChatEFE", "agent_turn", "agent_per_call", "agent_overhead", "agent_tools")}
    history: list = list(upload)
    print(f"timing {args.turns} turns (+1 warm-up), 2 model calls per turn for the first two methods ...", flush=True)
    for i in range(args.turns + 1):
        question = QUESTIONS[i % len(QUESTIONS)]
        first = history + [HumanMessage(question)]
        call = AIMessage("", tool_calls=[{"name": rtools[0].name, "args": {"image_path": image}, "id": f"c{i}"}])
        second = first + [call, ToolMessage("image/3f2a_edge_x_x.png", tool_call_id=f"c{i}")]
        prompts = [messages_to_prompt(first, tools), messages_to_prompt(second, tools)]
        paths = react.extract_image_paths("\n".join(str(m.content) for m in second))

        t = time.perf_counter()
        for p in prompts:
            step_llm.react_step(p, choices, paths)
        a = time.perf_counter() - t

        t = time.perf_counter()
        attempts = 0
        for msgs in (first, second):
            # a step that does not parse is retried (bounded): count the model calls it took
            attempts += len(chat.invoke(msgs).response_metadata.get("react_attempts", [None]))
        b = time.perf_counter() - t

        n_before = len(agent.history("bench"))
        timer.model = timer.tool = 0.0
        t = time.perf_counter()
        answer = agent.invoke(question, thread_id="bench")
        c = time.perf_counter() - t
        model_s, tool_s = timer.model, timer.tool
        calls = sum(isinstance(m, AIMessage) for m in agent.history("bench")[n_before:])

        history += [HumanMessage(question), AIMessage("image/3f2a_edge_x_x.png")]
        label = "warm-up" if i == 0 else f"turn {i}"
        print(
            f"  {label}: react_step {a:.2f} s, ChatEFE {b:.2f} s ({attempts} steps), agent {c:.2f} s ({calls} model calls: "
            f"model {model_s:.2f} s, tools {tool_s:.2f} s, graph+memory {c - model_s - tool_s:.2f} s) -> {answer[:50]!r}",
            flush=True,
        )
        if i == 0:
            continue
        times["react_step"].append(a)
        times["ChatEFE"].append(b)
        times["agent_turn"].append(c)
        times["agent_per_call"].append(model_s / max(calls, 1))
        times["agent_overhead"].append(c - model_s - tool_s)
        times["agent_tools"].append(tool_s)

    load = os.getloadavg()
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"{'method':<28}{'p50 s':>8}{'p95 s':>8}{'x react_step':>14}")
    base = statistics.median(times["react_step"])
    rows = [("react_step (2 calls)", "react_step", base), ("ChatEFE.invoke (2 calls)", "ChatEFE", base),
            ("agent turn (all)", "agent_turn", None), ("agent: per model call", "agent_per_call", base / 2),
            ("agent: tools per turn", "agent_tools", None), ("agent: graph+memory/turn", "agent_overhead", None)]
    for name, key, ref in rows:
        xs = times[key]
        ratio = f"{statistics.median(xs) / ref:>14.2f}" if ref else f"{'':>14}"
        print(f"{name:<28}{pct(xs, 0.5):>8.2f}{pct(xs, 0.95):>8.2f}{ratio}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
