"""LoRA fine-tuning of any causal LM on GPT4Tools-format data (transformers Trainer + peft).

The options of GPT4Tools' ``lora_finetune.py`` are accepted with the same meaning (``--base_model
--data_path --output_dir --num_epochs --batch_size --micro_batch_size --cutoff_len
--group_by_length --lora_target_modules --lora_r --lora_alpha --lora_dropout --learning_rate
--val_set_size --train_on_inputs --resume_from_checkpoint``), so the published recipe runs as
written. What differs by default, and why:

* loss on the response only (GPT4Tools v1 trained on the whole text: ``--train_on_inputs``);
  the prompt is 95% of every sample and identical across samples, so learning it is wasted work;
* no padding to the maximum: each micro batch is padded to its own longest sample, and
  ``--group_by_length`` puts samples of similar length together, so little compute goes to padding.
  ``--packing`` instead flattens each micro batch into one row with position ids restarting at
  every sample: with flash-attn installed this runs its variable-length kernel (no padding, no
  cross-contamination); without it transformers turns the restarting position ids into a
  block-diagonal mask for SDPA, which is still exact (no cross-contamination) but costs attention
  quadratic in the whole row, so it is slower than length grouping for long rows (measured on an
  H100: see benchmarks/bench_train.py). ``--pad_to_cutoff`` reproduces GPT4Tools v2 (every sample
  padded to ``--cutoff_len``) for the benchmark;
* the prompt is tokenized exactly as ``efe_langchain.llm`` tokenizes it at inference
  (``tokenizer(prompt)`` with its special tokens, then the response without), and a tool step's
  target ends with ``\\nObservation:`` so the model learns where to stop.

Multi-GPU: run the same command under ``torchrun --nproc_per_node N -m
efe_langchain.finetune.train ...`` or ``accelerate launch``; the Trainer does data parallelism and
``--batch_size`` stays the global batch (accumulation is divided by the world size, as in
GPT4Tools).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

__all__ = ["add_train_arguments", "build_parser", "load_records", "tokenize_records", "PaddingFreeCollator",
           "PaddedCollator", "train", "main"]

STOP_MARKER = "\nObservation:"


def add_train_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = p.add_argument_group("GPT4Tools lora_finetune.py options (same meaning)")
    g.add_argument("--base_model", required=True, help="local folder, hub id, or a .gguf file")
    g.add_argument("--data_path", required=True, nargs="+", help="JSON/JSONL files of {instruction, input, output}")
    g.add_argument("--output_dir", required=True)
    g.add_argument("--batch_size", type=int, default=128, help="global batch (samples per optimizer step)")
    g.add_argument("--micro_batch_size", type=int, default=4, help="samples per forward pass per device")
    g.add_argument("--num_epochs", type=float, default=3)
    g.add_argument("--learning_rate", type=float, default=3e-4)
    g.add_argument("--cutoff_len", type=int, default=2048, help="samples longer than this are dropped (and counted)")
    g.add_argument("--val_set_size", type=int, default=0, help="samples held out for an eval loss")
    g.add_argument("--lora_r", type=int, default=8)
    g.add_argument("--lora_alpha", type=int, default=16)
    g.add_argument("--lora_dropout", type=float, default=0.05)
    g.add_argument("--lora_target_modules", default="all-linear",
                   help="'all-linear' or a list such as '[q_proj,v_proj]' or 'q_proj,v_proj'")
    g.add_argument("--train_on_inputs", action="store_true", help="loss on the prompt too (GPT4Tools v1)")
    g.add_argument("--group_by_length", action="store_true", help="batch samples of similar length together")
    g.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'auto' for the latest in output_dir")
    g.add_argument("--add_eos_token", choices=["auto", "always", "never"], default="auto",
                   help="auto: after final answers, not after tool steps (those end at the stop marker)")
    g.add_argument("--prompt_template_name", default=None, help="accepted for compatibility; the prompt is the instruction itself")
    for name in ("--wandb_project", "--wandb_run_name", "--wandb_watch", "--wandb_log_model"):
        g.add_argument(name, default=None, help=argparse.SUPPRESS)

    e = p.add_argument_group("EFE options")
    e.add_argument("--gguf_file", default=None, help="GGUF file name inside --base_model (or pass the .gguf path as --base_model)")
    e.add_argument("--packing", dest="packing", action="store_true", default=False,
                   help="padding-free micro batches with restarting position ids (flash-attn varlen when installed)")
    e.add_argument("--no_packing", dest="packing", action="store_false", help="pad each micro batch to its longest sample (default)")
    e.add_argument("--attn_implementation", default=None, help="sdpa, eager, flash_attention_2 ... (default: flash_attention_2 "
                   "when packing and flash-attn is installed, else the model's default)")
    e.add_argument("--pad_to_cutoff", action="store_true", help="pad every sample to --cutoff_len (GPT4Tools v2; benchmark baseline)")
    e.add_argument("--init_adapter", default=None,
                   help="a saved LoRA adapter folder to go on training (its rank, alpha and modules replace --lora_*), "
                        "e.g. a second pass over fresh data; unlike --resume_from_checkpoint, a new run with its own schedule")
    e.add_argument("--gradient_checkpointing", action="store_true")
    e.add_argument("--precision", choices=["auto", "bf16", "fp16", "fp32"], default="auto", help="auto: bf16 where the GPU has it, else fp32")
    e.add_argument("--load_in_8bit", action="store_true", help="8-bit base model (bitsandbytes, CUDA)")
    e.add_argument("--load_in_4bit", action="store_true", help="4-bit NF4 base model (bitsandbytes, CUDA)")
    e.add_argument("--max_steps", type=int, default=-1, help="stop after this many optimizer steps (overrides epochs)")
    e.add_argument("--max_samples", type=int, default=0, help="use only the first N samples (after shuffling)")
    e.add_argument("--warmup_ratio", type=float, default=0.03)
    e.add_argument("--lr_scheduler", default="cosine")
    e.add_argument("--weight_decay", type=float, default=0.0)
    e.add_argument("--logging_steps", type=int, default=10)
    e.add_argument("--save_steps", type=int, default=0, help="checkpoint every N steps (0: only at the end)")
    e.add_argument("--save_total_limit", type=int, default=2)
    e.add_argument("--save_dtype", choices=["fp32", "fp16", "bf16"], default="fp32", help="dtype of the saved adapter weights")
    e.add_argument("--seed", type=int, default=42)
    e.add_argument("--dataloader_workers", type=int, default=0)
    e.add_argument("--no_plot", action="store_true", help="skip the loss plot PNG")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def build_parser() -> argparse.ArgumentParser:
    return add_train_arguments(argparse.ArgumentParser(prog="efe finetune train", description=__doc__.split("\n\n")[0]))


def load_records(paths: Sequence[str]) -> list[dict]:
    """GPT4Tools records from JSON lists or JSONL files, checked for the three fields."""
    out: list[dict] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training data {p} does not exist")
        text = p.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is neither a JSON list nor JSON lines: {e}") from e
        for i, r in enumerate(data):
            if not isinstance(r, dict) or not isinstance(r.get("instruction"), str) or not isinstance(r.get("output"), str):
                raise ValueError(f"{p} record {i} lacks a string 'instruction' and 'output'")
            out.append(r)
    if not out:
        raise ValueError("no training records in " + ", ".join(paths))
    return out


def _prompt_text(r: dict) -> str:
    inp = r.get("input") or ""
    return r["instruction"] + (("\n" + inp) if inp else "")


def tokenize_records(records: Sequence[dict], tokenizer, cutoff_len: int, train_on_inputs: bool = False,
                     add_eos_token: str = "auto", progress: bool = True) -> tuple[list[dict], int]:
    """``[{"input_ids", "labels"}]`` and how many records were dropped for exceeding ``cutoff_len``."""
    from tqdm.auto import tqdm

    eos = tokenizer.eos_token_id
    out, dropped = [], 0
    prompts = [_prompt_text(r) for r in records]
    # Batched calls of the fast tokenizer are ~10x quicker than one call per record.
    step = 512
    for s in tqdm(range(0, len(records), step), desc="tokenize", disable=not progress):
        chunk = records[s:s + step]
        p_ids = tokenizer(prompts[s:s + step], add_special_tokens=True)["input_ids"]
        o_ids = tokenizer([r["output"] for r in chunk], add_special_tokens=False)["input_ids"]
        for r, p, o in zip(chunk, p_ids, o_ids):
            o = list(o)
            want_eos = add_eos_token == "always" or (add_eos_token == "auto" and not r["output"].rstrip(" ").endswith(STOP_MARKER.strip()))
            if want_eos and eos is not None:
                o.append(eos)
            ids = list(p) + o
            if len(ids) > cutoff_len:
                dropped += 1
                continue
            labels = list(ids) if train_on_inputs else [-100] * len(p) + o
            out.append({"input_ids": ids, "labels": labels})
    return out, dropped


@dataclass
class PaddingFreeCollator:
    """One row per micro batch: samples back to back, position ids restarting at each sample.

    The first label of every sample is masked so no sample is trained to predict its neighbour.
    """

    def __call__(self, features: list[dict]) -> dict:
        import torch

        ids, labels, pos = [], [], []
        for f in features:
            n = len(f["input_ids"])
            ids += f["input_ids"]
            lab = list(f["labels"])
            lab[0] = -100
            labels += lab
            pos += list(range(n))
        return {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels]), "position_ids": torch.tensor([pos])}


@dataclass
class PaddedCollator:
    """Right-padded rows: to the longest sample of the micro batch, or to ``pad_to`` (GPT4Tools v2)."""

    pad_id: int
    pad_to: int = 0

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = self.pad_to or max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class _ListDataset:
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _make_trainer_class():
    import torch
    from transformers import Trainer

    class ResponseOnlyLogitsTrainer(Trainer):
        """Computes the vocabulary projection only where a label is trained.

        With the loss on the response only, ~95% of positions carry no label; projecting them onto
        the 49k-token vocabulary anyway costs a quarter of a small model's FLOPs and most of its
        activation memory. The loss is a plain mean over the micro batch's labelled tokens.
        """

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            # Our loss is a per-micro-batch mean: let the Trainer scale it for accumulation.
            self.model_accepts_loss_kwargs = False
            if hasattr(self, "loss_is_scaled_for_ga"):
                self.loss_is_scaled_for_ga = False

        real_tokens = 0
        token_slots = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            if model.training:
                # Counted here rather than in the collator, which also sees prefetched batches.
                mask = inputs.get("attention_mask")
                self.real_tokens += int(mask.sum()) if mask is not None else labels.numel()
                self.token_slots += labels.numel()
            nxt = labels[:, 1:]
            keep = (nxt != -100).any(dim=0).nonzero().squeeze(-1)
            if keep.numel() == 0:
                keep = torch.zeros(1, dtype=torch.long, device=labels.device)
            outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
            logits = outputs.logits.float()
            target = nxt[:, keep]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            loss = loss / (target != -100).sum().clamp(min=1)
            return (loss, outputs) if return_outputs else loss

    return ResponseOnlyLogitsTrainer


class _SteadyClock:
    """Real tokens per second from the end of step ``warm_steps`` to the last step (this rank)."""

    def __init__(self, trainer, warm_steps: int = 2):
        self.trainer, self.warm = trainer, warm_steps
        self.start: tuple[float, int] | None = None
        self.end: tuple[float, int] | None = None

    def _mark(self) -> tuple[float, int]:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.time(), self.trainer.real_tokens

    def callback(self):
        from transformers import TrainerCallback

        clock = self

        class _Cb(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step == clock.warm:
                    clock.start = clock._mark()
                elif state.global_step > clock.warm:
                    clock.end = clock._mark()

        return _Cb()

    def tokens_per_s(self) -> float | None:
        if not (self.start and self.end) or self.end[0] <= self.start[0]:
            return None
        return (self.end[1] - self.start[1]) / (self.end[0] - self.start[0])


def _target_modules(spec: str) -> str | list[str]:
    s = spec.strip().strip("[]")
    if s in ("all-linear", "all_linear"):
        return "all-linear"
    mods = [m.strip().strip("'\"") for m in s.split(",") if m.strip()]
    if not mods:
        raise ValueError(f"--lora_target_modules {spec!r} names no module")
    return mods


def _precision(choice: str) -> str:
    import torch

    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def load_base_model(args, precision: str):
    """The base model and tokenizer; a GGUF is dequantized (transformers) and made trainable."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, gguf = args.base_model, args.gguf_file
    if gguf is None and source.endswith(".gguf"):
        if not Path(source).is_file():
            raise FileNotFoundError(f"--base_model {source} does not exist")
        source, gguf = str(Path(source).parent), Path(source).name
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]
    kw: dict[str, Any] = {"dtype": dtype}
    attn = getattr(args, "attn_implementation", None)
    if attn is None and getattr(args, "packing", False) and torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            attn = "flash_attention_2"
        except ImportError:
            print("packing without flash-attn: SDPA with a block-diagonal mask (exact, but quadratic in the row)",
                  file=sys.stderr)
    if attn:
        kw["attn_implementation"] = attn
    if gguf:
        kw["gguf_file"] = gguf
    if args.load_in_8bit or args.load_in_4bit:
        if not torch.cuda.is_available():
            raise ValueError("--load_in_8bit/--load_in_4bit need a CUDA GPU (bitsandbytes)")
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=args.load_in_8bit, load_in_4bit=args.load_in_4bit,
            bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4")
        kw["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": gguf} if gguf else {}))
    model = AutoModelForCausalLM.from_pretrained(source, **kw)
    if gguf:
        # The GGUF weights are plain tensors after loading; the leftover "quantizer" would make the
        # Trainer and save_pretrained treat the model as quantized.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        for attr in ("is_quantized", "quantization_method"):
            if attr in model.__dict__:
                del model.__dict__[attr]
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _plot_loss(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    ev = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*zip(*pts), label="train loss")
    if ev:
        ax.plot(*zip(*ev), "o-", label="eval loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (response tokens)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _training_arguments(**kw):
    """TrainingArguments across transformers versions (group-by-length moved to a strategy field)."""
    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments).parameters
    group = kw.pop("group_by_length")
    if "train_sampling_strategy" in params:
        kw["train_sampling_strategy"] = "group_by_length" if group else "random"
    else:
        kw["group_by_length"] = group
    targs = TrainingArguments(**{k: v for k, v in kw.items() if k in params})
    if targs.n_gpu > 1:  # (reading n_gpu sets the devices up)
        # One process seeing several GPUs: the Trainer would wrap the model in nn.DataParallel, which
        # splits the response-only loss's position index across replicas (and is slower than DDP).
        # Use one GPU; torchrun / accelerate launch use them all.
        print(f"{targs._n_gpu} GPUs visible to one process: training on one; launch with torchrun to use all",
              file=sys.stderr)
        targs._n_gpu = 1
    return targs


def _load_adapter_to_train(model, args):
    """Wrap ``model`` with the saved adapter ``args.init_adapter``, trainable; its LoRA settings win."""
    from peft import PeftConfig, PeftModel

    folder = Path(args.init_adapter)
    cfg = PeftConfig.from_pretrained(str(folder))
    if cfg.peft_type != "LORA":
        raise ValueError(f"--init_adapter {folder} is a {cfg.peft_type} adapter, not LoRA")
    model = PeftModel.from_pretrained(model, str(folder), is_trainable=True)
    # The summary and the saved config must describe the adapter that was actually trained.
    args.lora_r, args.lora_alpha, args.lora_dropout = cfg.r, cfg.lora_alpha, cfg.lora_dropout
    modules = cfg.target_modules
    args.lora_target_modules = modules if isinstance(modules, str) else ",".join(sorted(modules))
    return model


def train(args) -> dict:
    """Run one training; returns a summary (also written to ``output_dir/train_summary.json``)."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    Trainer = _make_trainer_class()

    if args.batch_size < args.micro_batch_size or args.batch_size % args.micro_batch_size:
        raise ValueError("--batch_size must be a multiple of --micro_batch_size")
    if args.pad_to_cutoff and args.packing:
        args.packing = False
    if args.init_adapter and not (Path(args.init_adapter) / "adapter_config.json").is_file():
        # Checked before the base model loads, which takes a while.
        raise FileNotFoundError(f"--init_adapter {args.init_adapter} has no adapter_config.json (not a saved PEFT adapter)")
    world = int(os.environ.get("WORLD_SIZE", 1))
    accumulation = max(1, args.batch_size // args.micro_batch_size // world)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = _precision(args.precision)
    t0 = time.time()

    records = load_records(args.data_path)
    random.Random(args.seed).shuffle(records)
    if args.max_samples:
        records = records[: args.max_samples]
    model, tokenizer = load_base_model(args, precision)
    t_load = time.time() - t0
    rows, dropped = tokenize_records(records, tokenizer, args.cutoff_len, args.train_on_inputs, args.add_eos_token,
                                     progress=not args.quiet)
    if not rows:
        raise ValueError(f"every record is longer than --cutoff_len {args.cutoff_len}")
    val_rows = rows[: args.val_set_size] if args.val_set_size else []
    train_rows = rows[args.val_set_size:] if args.val_set_size else rows

    if args.load_in_8bit or args.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    if args.init_adapter:
        model = _load_adapter_to_train(model, args)
    else:
        lcfg = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          target_modules=_target_modules(args.lora_target_modules), bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lcfg)
    if args.gradient_checkpointing:
        model.enable_input_require_grads()
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    collator = PaddingFreeCollator() if args.packing else PaddedCollator(
        tokenizer.pad_token_id, pad_to=args.cutoff_len if args.pad_to_cutoff else 0)
    targs = _training_arguments(
        output_dir=str(out_dir),
        per_device_train_batch_size=args.micro_batch_size,
        per_device_eval_batch_size=args.micro_batch_size,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=args.num_epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type=args.lr_scheduler,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        logging_steps=args.logging_steps,
        save_strategy="steps" if args.save_steps else "no",
        save_steps=args.save_steps or 500,
        save_total_limit=args.save_total_limit,
        eval_strategy="steps" if val_rows else "no",
        eval_steps=max(args.logging_steps * 10, 50),
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if args.gradient_checkpointing else None,
        group_by_length=args.group_by_length,
        remove_unused_columns=False,
        report_to=[],
        seed=args.seed,
        dataloader_num_workers=args.dataloader_workers,
        disable_tqdm=args.quiet,
        ddp_find_unused_parameters=False if world > 1 else None,
        save_only_model=False,
    )
    train_ds = _ListDataset(train_rows)
    if args.group_by_length:
        # LengthGroupedSampler reads lengths from this column instead of touching every row.
        for r in train_rows:
            r["length"] = len(r["input_ids"])
    trainer = Trainer(model=model, args=targs, train_dataset=train_ds,
                      eval_dataset=_ListDataset(val_rows) if val_rows else None, data_collator=collator)
    steady = _SteadyClock(trainer, warm_steps=2)
    trainer.add_callback(steady.callback())
    resume = args.resume_from_checkpoint
    if resume == "auto":
        ckpts = sorted(out_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        resume = str(ckpts[-1]) if ckpts else None
    elif resume and not Path(resume).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {resume} is not a folder")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t1 = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    train_s = time.time() - t1

    if trainer.is_world_process_zero():
        sd = None
        if args.save_dtype != "fp32":
            from peft import get_peft_model_state_dict

            dt = {"fp16": torch.float16, "bf16": torch.bfloat16}[args.save_dtype]
            sd = {k: v.to(dt) for k, v in get_peft_model_state_dict(model).items()}
        model.save_pretrained(str(out_dir), state_dict=sd) if sd is not None else model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    real = trainer.real_tokens * world
    steady_tps = steady.tokens_per_s()
    summary = {
        "base_model": args.base_model + (f"/{args.gguf_file}" if args.gguf_file else ""),
        "samples": len(train_rows), "dropped_over_cutoff": dropped, "val_samples": len(val_rows),
        "epochs": args.num_epochs, "max_steps": args.max_steps, "optimizer_steps": trainer.state.global_step,
        "batch_size": args.batch_size, "micro_batch_size": args.micro_batch_size, "gradient_accumulation": accumulation,
        "world_size": world, "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "lora_dropout": args.lora_dropout,
        "target_modules": args.lora_target_modules, "learning_rate": args.learning_rate, "precision": precision,
        "packing": args.packing, "pad_to_cutoff": args.pad_to_cutoff, "train_on_inputs": args.train_on_inputs,
        "gradient_checkpointing": args.gradient_checkpointing, "trainable_params": n_trainable,
        "init_adapter": args.init_adapter,
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "train_loss": result.training_loss, "load_s": round(t_load, 2), "train_s": round(train_s, 2),
        "real_tokens": real, "token_slots": trainer.token_slots * world,
        "real_tokens_per_s": round(real / train_s, 1) if train_s > 0 else None,
        # After the first steps (CUDA start-up, allocator warm-up), all ranks together.
        "steady_real_tokens_per_s": round(steady_tps * world, 1) if steady_tps else None,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    if trainer.is_world_process_zero():
        (out_dir / "train_summary.json").write_text(json.dumps(summary, indent=1))
        (out_dir / "log_history.json").write_text(json.dumps(history, indent=1))
        if not args.no_plot:
            _plot_loss(history, out_dir / "loss.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = train(args)
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
