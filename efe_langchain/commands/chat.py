"""``efe chat``: chat with the agent in the terminal.

Type a message, or ``/image PATH`` to upload an image, ``/history`` to see the conversation,
``/help``, ``/quit``. When stdin is not a terminal the lines are read from it, one message per
line, so a chat can be scripted (``printf 'hi\\n/quit\\n' | efe chat``). With ``--db FILE`` the
conversation is saved in SQLite and goes on where it stopped the next time the same file and
``--thread`` are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, TextIO

HELP = """commands:
  /image PATH   upload an image into the conversation
  /history      show the conversation so far
  /help         this text
  /quit         leave (Ctrl-D works too)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="embedded", help="'embedded' (SmolLM2-135M shipped in a wheel) or a model folder / .gguf file")
    p.add_argument("--adapter", default=None, help="PEFT adapter folder; for the embedded model 'default' (the shipped one) or 'none'")
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside --model")
    p.add_argument("--image", action="append", default=[], metavar="PATH", help="upload an image before the chat (repeatable)")
    p.add_argument("--db", default=None, metavar="FILE", help="SQLite file that keeps conversations across runs")
    p.add_argument("--thread", default="default", help="conversation id within --db (default: %(default)s)")
    p.add_argument("--workspace", default=None, help="folder for images (default: $EFE_WORKSPACE or ./workspace)")
    p.add_argument("--tools", default=None, help="GPT4Tools-style tool list, e.g. 'Image2Canny_cpu,ImageCaptioning_cpu' (default: all that can run)")
    p.add_argument("--no-constrained", action="store_true", help="free decoding: no constraints on tool names, images or argument counts")
    p.add_argument("--tool-orders", type=int, default=None,
                   help="constrained decoding scores each tool choice under N orders of the tool list (default 3; 1 is fastest)")
    p.add_argument("--order-confidence", type=float, default=None,
                   help="skip the other tool orders when the first gives its pick at least this probability (default 0.95; 0 always consults them)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest free text the model writes per step")
    p.add_argument("--max-tool-steps", type=int, default=6, help="tool calls allowed per turn (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="print only the answers, not the tool steps")


def check_order_confidence(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"--order-confidence must be a probability in [0, 1], not {value}")
    return value


def load_llm(args: argparse.Namespace):
    from efe_langchain.llm import LocalLLM, load_embedded_llm

    extra = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
    if getattr(args, "tool_orders", None) is not None:
        if args.tool_orders < 1:
            raise ValueError(f"--tool-orders must be at least 1, not {args.tool_orders}")
        extra["tool_orders"] = args.tool_orders
    if getattr(args, "order_confidence", None) is not None:
        extra["tool_order_confidence"] = check_order_confidence(args.order_confidence)
    adapter = None if (args.adapter or "").lower() == "none" else args.adapter
    # "org/name" may be a hub id; "./x", "/x", "~/x" and "x.gguf" can only be local files.
    looks_like_path = args.model.startswith((".", "/", "~")) or args.model.endswith(".gguf")
    if args.model != "embedded" and looks_like_path and not Path(args.model).expanduser().exists():
        raise FileNotFoundError(f"no model at {args.model!r}: give a model folder, a .gguf file or 'embedded'")
    try:
        if args.model == "embedded":
            return load_embedded_llm(adapter=adapter if args.adapter else "default", **extra)
        return LocalLLM.from_pretrained(args.model, adapters=[adapter] if adapter else [], gguf_file=args.gguf_file, **extra)
    except OSError as exc:
        # One readable line for the terminal (the CLI prints ValueErrors without a traceback).
        raise ValueError(str(exc)) from exc


def build_agent(args: argparse.Namespace):
    from efe_langchain.agent import EFEAgent
    from efe_langchain.chat_model import ChatEFE
    from efe_langchain.tools.registry import load_tools
    from efe_langchain.workspace import Workspace

    workspace = Workspace(args.workspace)
    _status(f"loading model {args.model} ...")
    llm = load_llm(args)
    _status(f"model: {getattr(llm, 'model_name', args.model)}")
    tools = load_tools(args.tools, workspace=workspace)
    _status(f"tools: {', '.join(getattr(t, 'gpt4tools_name', None) or t.name for t in tools) or 'none'}")
    return EFEAgent(
        model=ChatEFE(llm=llm, constrained=not args.no_constrained),
        tools=tools,
        workspace=workspace,
        checkpointer=f"sqlite:{args.db}" if args.db else "memory",
        max_tool_steps=args.max_tool_steps,
    )


def _status(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _lines(stdin: TextIO, prompt: str) -> Iterable[str]:
    if stdin.isatty():
        while True:
            try:
                yield input(prompt)
            except EOFError:
                print()
                return
    else:
        for line in stdin:
            yield line.rstrip("\n")


def _upload(agent, path: str, thread: str, out: TextIO) -> None:
    try:
        name = agent.upload(path, thread_id=thread)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=out, flush=True)
        return
    turn = agent.history(thread)[-2].content
    print(f"uploaded {path} as {name}: {turn}", file=out, flush=True)


def _show(event, out: TextIO, quiet: bool) -> None:
    if event.kind == "tool_call" and not quiet:
        args = ", ".join(str(v) for v in (event.tool_input or {}).values()) if isinstance(event.tool_input, dict) else event.tool_input
        print(f"  > {event.tool}: {args}", file=out, flush=True)
    elif event.kind == "tool_result" and not quiet:
        shown = event.output if len(event.output or "") <= 400 else event.output[:400] + " ..."
        print(f"  < {shown}", file=out, flush=True)
    elif event.kind in ("final", "error"):
        print(f"efe> {event.text}", file=out, flush=True)
        if event.image:
            print(f"     (image: {event.image})", file=out, flush=True)


def chat_loop(agent, thread: str, stdin: TextIO | None = None, out: TextIO | None = None, quiet: bool = False) -> int:
    """Read messages and commands until /quit or end of input; nothing typed ends the session."""
    # Looked up per call, not bound at import: tests and embedding apps swap sys.stdin/stdout.
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    for line in _lines(stdin, "you> "):
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/help":
            print(HELP, file=out, flush=True)
        elif text == "/history":
            for m in agent.history(thread):
                who = {"human": "Human", "ai": "AI", "tool": "Observation"}.get(m.type, m.type)
                if m.type == "ai" and getattr(m, "tool_calls", None):
                    for call in m.tool_calls:
                        print(f"Action: {call['name']} {call['args']}", file=out)
                else:
                    print(f"{who}: {m.content}", file=out)
            out.flush()
        elif text.startswith("/image"):
            path = text[len("/image"):].strip()
            if not path:
                print("usage: /image PATH", file=out, flush=True)
            else:
                _upload(agent, path, thread, out)
        elif text.startswith("/") and " " not in text:
            print(f"unknown command {text}; /help lists them", file=out, flush=True)
        else:
            for event in agent.stream(text, thread_id=thread):
                _show(event, out, quiet)
    return 0


def run(args: argparse.Namespace) -> int:
    agent = build_agent(args)
    before = len(agent.history(args.thread))
    if before:
        _status(f"continuing conversation {args.thread!r} from {args.db} ({before} messages)")
    for path in args.image:
        _upload(agent, path, args.thread, sys.stdout)
    if sys.stdin.isatty():
        _status("type a message, /image PATH to upload, /help, /quit")
    return chat_loop(agent, args.thread, quiet=args.quiet)
