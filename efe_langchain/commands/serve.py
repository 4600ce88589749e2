"""``efe serve``: the local model behind an OpenAI-compatible HTTP API (``/v1/...``)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", default="embedded",
                        help="embedded | embedded:noadapter | PATH_OR_HUB_ID[+ADAPTER] (default: embedded)")
    parser.add_argument("--name", default=None,
                        help="model id clients send (default: efe-embedded, or the folder name)")
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default when a request sets no max_tokens")
    parser.add_argument("--free", action="store_true",
                        help="decode chat tool steps freely instead of constrained (tool names, images, arg counts)")
    parser.add_argument("--tool-orders", type=int, default=None,
                        help="constrained decoding scores each tool choice under N orders of the tool list (default 3)")
    parser.add_argument("--order-confidence", type=float, default=None,
                        help="skip the other tool orders when the first gives its pick at least this probability (default 0.95; 0 always consults them)")
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from efe_langchain.evaluation.run import load_local_llm, parse_model_spec
    from efe_langchain.serve import serve

    spec = parse_model_spec(args.model)
    if spec.kind != "local":
        raise ValueError(f"efe serve needs a local model (embedded, embedded:noadapter or a path), not {args.model!r}")
    llm = load_local_llm(spec, args.device)
    if args.max_new_tokens:
        llm.max_new_tokens = args.max_new_tokens
    if args.free:
        llm.constrained = False
    if args.tool_orders is not None:
        if args.tool_orders < 1:
            raise ValueError(f"--tool-orders must be at least 1, not {args.tool_orders}")
        llm.tool_orders = args.tool_orders
    if args.order_confidence is not None:
        from efe_langchain.commands.chat import check_order_confidence

        llm.tool_order_confidence = check_order_confidence(args.order_confidence)
    name = args.name or ("efe-embedded" if spec.name == "embedded" and spec.embedded_adapter else
                         "efe-embedded-noadapter" if spec.name == "embedded" else Path(spec.name).name)
    print(f"serving {llm.model_name} as '{name}' on http://{args.host}:{args.port}/v1", flush=True)
    serve(llm, host=args.host, port=args.port, model_name=name, log_level=args.log_level)
    return 0
