"""``efe finetune``: make tool-use training data and train a LoRA adapter.

    efe finetune data offline --episodes 20000 --out data/train.json
    efe finetune data self-instruct --captions captions.txt --model gpt-4o-mini --out data/si.json
    efe finetune data gpt4tools --input gpt4tools_71k.json --out data/g4t.json
    efe finetune data splits --out evaluation/data
    efe finetune train --base_model MODEL --data_path data/train.json --output_dir runs/lora ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="finetune_command", metavar="{data,train}")
    data = sub.add_parser("data", help="generate or convert training data (GPT4Tools format)")
    dsub = data.add_subparsers(dest="data_source", metavar="{offline,self-instruct,gpt4tools,splits}")

    off = dsub.add_parser("offline", help="template generator with real and synthetic tools (no LLM)")
    off.add_argument("--episodes", type=int, default=20000, help="conversation moments; each gives 1-3 step samples")
    off.add_argument("--seed", type=int, default=0)
    off.add_argument("--final_prob", type=float, default=0.6, help="share of tool episodes that also train the final answer")
    off.add_argument("--out", required=True)

    si = dsub.add_parser("self-instruct", help="an LLM behind an OpenAI-compatible endpoint writes the instructions")
    si.add_argument("--captions", required=True, help="text file, one image caption per line")
    si.add_argument("--model", required=True)
    si.add_argument("--base_url", default=None, help="default: $OPENAI_BASE_URL or OpenAI")
    si.add_argument("--api_key", default=None, help="default: $OPENAI_API_KEY")
    si.add_argument("--per_caption", type=int, default=3, help="instructions asked for per caption")
    si.add_argument("--concurrency", type=int, default=4)
    si.add_argument("--seed", type=int, default=0)
    si.add_argument("--out", required=True)

    g4 = dsub.add_parser("gpt4tools", help="convert the official gpt4tools_71k.json into one-step samples")
    g4.add_argument("--input", required=True)
    g4.add_argument("--out", required=True)
    g4.add_argument("--keep_heldout", action="store_true", help="keep records that list the zero-shot benchmark's tools")

    sp = dsub.add_parser("splits", help="write val_generated / val_handwritten / test_unseen")
    sp.add_argument("--out", default="evaluation/data")

    tr = sub.add_parser("train", help="LoRA fine-tuning (GPT4Tools lora_finetune.py options)")
    from efe_langchain.finetune.train import add_train_arguments

    add_train_arguments(tr)


def _write(records: list, out: str) -> None:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {len(records)} samples to {path}")


def run(args: argparse.Namespace) -> int:
    cmd = getattr(args, "finetune_command", None)
    if cmd == "train":
        from efe_langchain.finetune.train import train

        summary = train(args)
        print(json.dumps(summary, indent=1))
        return 0
    if cmd != "data" or not getattr(args, "data_source", None):
        raise ValueError("choose 'efe finetune data {offline,self-instruct,gpt4tools,splits}' or 'efe finetune train'")
    src = args.data_source
    if src == "offline":
        from efe_langchain.finetune.offline_data import generate_samples

        if args.episodes < 1:
            raise ValueError("--episodes must be at least 1")
        _write(generate_samples(args.episodes, args.seed, "train", final_prob=args.final_prob), args.out)
    elif src == "self-instruct":
        from efe_langchain.finetune.self_instruct import generate_self_instruct

        captions = [l.strip() for l in Path(args.captions).read_text(encoding="utf-8").splitlines() if l.strip()]
        if not captions:
            raise ValueError(f"{args.captions} holds no captions")
        records, stats = generate_self_instruct(captions, model=args.model, base_url=args.base_url, api_key=args.api_key,
                                                per_caption=args.per_caption, concurrency=args.concurrency, seed=args.seed)
        _write(records, args.out)
        print(json.dumps(stats))
    elif src == "gpt4tools":
        from efe_langchain.finetune.gpt4tools_data import convert_gpt4tools

        records, stats = convert_gpt4tools(args.input, drop_heldout=not args.keep_heldout)
        _write(records, args.out)
        print(json.dumps(stats))
    elif src == "splits":
        from efe_langchain.finetune.splits import write_splits

        print(json.dumps(write_splits(args.out)))
    return 0
