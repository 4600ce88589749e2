"""Helpers every benchmark script shares (run as ``python benchmarks/<script>.py``, so this folder
is on sys.path)."""

from __future__ import annotations

import os
import platform


def pct(xs: list[float], q: float) -> float:
    """The q-quantile of ``xs`` with linear interpolation (nan for no values)."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def machine() -> str:
    """One line naming the machine, the libraries and the load, for every result printed."""
    import torch
    import transformers

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return (
        f"{platform.node()} | {cpu} | {os.cpu_count()} cores | torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) | transformers {transformers.__version__} | device {dev} | "
        f"load avg {os.getloadavg()[0]:.1f}"
    )


def resolve_model(base: str | None, adapter: str | None) -> tuple[str, str | None]:
    """``--base`` / ``--adapter`` as the scripts take them: no base is the embedded SmolLM2 GGUF,
    adapter "default" the shipped one, "none" (or None) no adapter."""
    if base is None:
        from efe_langchain.embedded import smollm2_gguf_path

        base = str(smollm2_gguf_path())
    if adapter == "default":
        from efe_langchain.llm import package_adapter_dir

        adapter = str(package_adapter_dir())
    elif adapter == "none":
        adapter = None
    return base, adapter
