"""The ``efe`` command. Each subcommand lives in ``efe_langchain/commands/<name>.py`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``; imports there stay lazy so ``efe --help`` is fast."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> one-line help; the module efe_langchain.commands.<name> implements it
SUBCOMMANDS = {
    "chat": "chat with the agent in the terminal",
    "tools": "list every tool, its backends and whether each can run here",
    "eval": "score models on GPT4Tools' metrics",
    "serve": "serve the local model over an OpenAI-compatible HTTP API",
    "merge": "merge a LoRA adapter into its base model and save the result",
    "finetune": "generate tool-use data and train a LoRA adapter",
    "app": "start the Streamlit app",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="efe", description="EFE: LLMs that see and edit images with tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(f"efe_langchain.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"efe_langchain.commands.{name}":
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a CLI prints one clear line, not a traceback, for user errors
        if isinstance(exc, (FileNotFoundError, ValueError, KeyError, PermissionError)):
            print(f"efe {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
