"""``efe merge BASE ADAPTER OUT``: fold a PEFT (LoRA) adapter into its base model and save it.

The merged folder loads with plain ``transformers`` (no peft needed) and runs faster than base +
adapter. Before saving, the merged model's logits are compared with base + adapter on a ReAct
probe, and after saving the folder is reloaded and compared again, so a bad merge never passes
silently (``--no-check`` skips this for models too large to hold twice).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PROBE = "Thought: Do I need to use a tool? Yes\nAction: Edge Detection On Image\nAction Input: image/1a2b3c4d.png"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", help="base model: a local folder, a hub id (needs network) or a .gguf file")
    p.add_argument("adapter", help="PEFT adapter folder (adapter_config.json + weights) or hub id")
    p.add_argument("out", help="folder to write the merged model and tokenizer to")
    p.add_argument("--gguf-file", help="GGUF file name inside BASE (a GGUF base is dequantized)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="dtype to merge and save in")
    p.add_argument("--force", action="store_true", help="write into OUT even if it is not empty")
    p.add_argument("--no-check", action="store_true", help="skip the logits comparison before and after saving")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest logit difference the check accepts")


def _max_diff(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


def merge(
    base: str,
    adapter: str,
    out: str | Path,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    force: bool = False,
    check: bool = True,
    tolerance: float = 1e-3,
    log=print,
) -> dict:
    """Merge ``adapter`` into ``base`` and save to ``out``; returns what was done and measured."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ValueError(f"{out} exists and is not empty; choose another folder or pass --force")
    adapter_dir = Path(adapter).expanduser()
    if adapter_dir.exists() and not (adapter_dir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} has no adapter_config.json: it is not a PEFT adapter folder")
    base_src = base
    if gguf_file is None and base.endswith(".gguf") and Path(base).is_file():
        base_src, gguf_file = str(Path(base).parent), Path(base).name
    gguf_kw = {"gguf_file": gguf_file} if gguf_file else {}
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]

    t0 = time.perf_counter()
    log(f"loading base {base}{' (' + gguf_file + ')' if gguf_file else ''} ...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_src, **gguf_kw)
        model = AutoModelForCausalLM.from_pretrained(base_src, dtype=torch_dtype, **gguf_kw)
    except OSError as e:
        raise FileNotFoundError(f"cannot load base model {base!r}: {e}") from e
    model.eval()
    if gguf_file:
        # transformers dequantizes GGUF weights on load but still marks the model "gguf" and
        # refuses to save it; the weights are plain tensors of `dtype` now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    log(f"loading adapter {adapter} ...")
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"cannot load PEFT adapter {adapter!r}: {e}") from e
    peft_model.eval()

    report: dict = {"base": base, "gguf_file": gguf_file, "adapter": str(adapter), "out": str(out), "dtype": dtype}
    probe = tokenizer(PROBE, return_tensors="pt") if check else None
    with torch.inference_mode():
        reference = peft_model(**probe).logits if check else None
        merged = peft_model.merge_and_unload()
        if check:
            report["max_logit_diff_merged"] = _max_diff(merged(**probe).logits, reference)

    out.mkdir(parents=True, exist_ok=True)
    log(f"saving merged model to {out} ...")
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if check:
        with torch.inference_mode():
            reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch_dtype).eval()
            report["max_logit_diff_reloaded"] = _max_diff(reloaded(**probe).logits, reference)
        worst = max(report["max_logit_diff_merged"], report["max_logit_diff_reloaded"])
        report["check"] = "passed" if worst <= tolerance else "FAILED"
    report["seconds"] = round(time.perf_counter() - t0, 2)
    (out / "efe_merge.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if check and report["check"] != "passed":
        raise ValueError(
            f"the merged model differs from base + adapter by {worst:.3g} in logits "
            f"(tolerance {tolerance}); the saved files in {out} should not be used"
        )
    return report


def run(args: argparse.Namespace) -> int:
    report = merge(
        args.base,
        args.adapter,
        args.out,
        gguf_file=args.gguf_file,
        dtype=args.dtype,
        force=args.force,
        check=not args.no_check,
        tolerance=args.tolerance,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    if "check" in report:
        print(
            f"merged {args.adapter} into {args.base} -> {args.out} "
            f"(check {report['check']}: max logit difference {report['max_logit_diff_reloaded']:.2e} after reload)"
        )
    else:
        print(f"merged {args.adapter} into {args.base} -> {args.out} (not checked)")
    return 0
