"""``efe eval``: score local and OpenAI-compatible models on GPT4Tools' metrics, side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", "-a", default=None,
                        help="evaluation file in GPT4Tools' format (default: the shipped sample_eval.json)")
    parser.add_argument("--model", "-m", action="append", default=[], required=True,
                        help="repeatable: embedded | embedded:noadapter | openai:MODEL (completions for *-instruct, "
                             "else chat) | openai-chat:MODEL | openai-completions:MODEL | openai-tools:MODEL "
                             "(native tool calling) | PATH_OR_HUB_ID[+ADAPTER]")
    parser.add_argument("--out", "-o", required=True, help="output folder (a rerun resumes there)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records")
    parser.add_argument("--batch-size", type=int, default=8, help="local models: prompts per forward pass (default 8)")
    parser.add_argument("--decoding", choices=("free", "constrained", "both"), default="both",
                        help="local models: free greedy text, constrained ReAct decoding, or both side by side")
    parser.add_argument("--tool-orders", type=int, default=None,
                        help="local models, constrained decoding: score each tool choice under N orders of the tool "
                             "list (default: the model's, 3); runs with another value than 3 are labelled @constrained-oN")
    parser.add_argument("--order-confidence", type=float, default=None,
                        help="local models, constrained decoding: skip the other tool orders when the first gives its "
                             "pick at least this probability (default 0.95; 0: always); other values are labelled -gP")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="per ReAct step (default 128)")
    parser.add_argument("--device", default=None, help="local models: cpu, cuda, cuda:1 ... (default: auto)")
    api = parser.add_argument_group("OpenAI-compatible endpoints")
    api.add_argument("--base-url", default=None, help="default $OPENAI_BASE_URL, else api.openai.com")
    api.add_argument("--api-key", default=None, help="default $OPENAI_API_KEY")
    api.add_argument("--concurrency", type=int, default=4, help="parallel requests (default 4)")
    api.add_argument("--max-retries", type=int, default=4, help="retries on rate limits, 5xx and timeouts")
    api.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    api.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                     help="USD per million input,output tokens; overrides the built-in table")
    parser.add_argument("--scorer", choices=("spec", "script"), default="spec",
                        help="no-tool records as EVAL_FORMAT.md states (spec) or as the published script does")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _prices(items: list[str]) -> dict[str, tuple[float, float]]:
    prices = {}
    for item in items:
        try:
            model, rest = item.split("=", 1)
            p_in, p_out = (float(x) for x in rest.split(","))
        except ValueError:
            raise ValueError(f"--price {item!r}: expected MODEL=IN,OUT in USD per million tokens, e.g. gpt-4o=2.5,10") from None
        prices[model.strip()] = (p_in, p_out)
    return prices


def run(args: argparse.Namespace) -> int:
    from efe_langchain.evaluation.report import markdown_table
    from efe_langchain.evaluation.run import dist_info, run_evaluation
    from efe_langchain.evaluation.sample import sample_eval_path

    annotations = args.annotations or str(sample_eval_path())
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    results = run_evaluation(
        annotations,
        args.model,
        args.out,
        limit=args.limit,
        batch_size=args.batch_size,
        decoding=args.decoding,
        tool_orders=args.tool_orders,
        order_confidence=args.order_confidence,
        max_new_tokens=args.max_new_tokens,
        device=args.device,
        variant=args.scorer,
        progress=not args.no_progress,
        prices=_prices(args.price),
        openai_options={
            "base_url": args.base_url,
            "api_key": args.api_key,
            "concurrency": args.concurrency,
            "max_retries": args.max_retries,
            "timeout": args.timeout,
        },
    )
    if dist_info()[0] != 0:
        return 0
    runs = [(r.label, r.metrics) for r in results if r.metrics]
    if runs:
        print(markdown_table(runs))
    print(f"report: {Path(args.out) / 'report.md'}")
    failed = [r for r in results if r.error]
    for r in failed:
        print(f"efe eval: {r.label}: {r.error}", file=sys.stderr)
    return 1 if failed else 0
