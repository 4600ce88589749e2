"""Read the official ``gpt4tools_71k.json`` into one-ReAct-step samples.

GPT4Tools v1 trained on each record's whole continuation (every step, with the observations the
generator wrote). Our models stop at ``Observation:`` and see the real observation in the
scratchpad on the next call, so each record becomes one sample per step: the instruction plus the
earlier steps rendered by ``efe_langchain.react``, and the next step as the target.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from efe_langchain import react

from .offline_data import TOOL_TARGET_SUFFIX, heldout_names

__all__ = ["split_steps", "convert_record", "convert_gpt4tools"]

_STEP_RE = re.compile(
    r"Thought:\s*Do I need to use a tool\?\s*Yes\s*\n\s*Action:\s*(?P<tool>.+?)\s*\n\s*Action Input:\s*(?P<input>.*?)\s*\n"
    r"\s*Observation:\s*(?P<obs>.*?)\s*(?=\n\s*Thought:|\Z)",
    re.S,
)
_FINAL_RE = re.compile(r"Thought:\s*Do I need to use a tool\?\s*No\s*\n\s*AI:\s*(?P<answer>.*)", re.S)
_TOOL_LINE = re.compile(r"^> (.+?): ", re.M)


def split_steps(output: str) -> tuple[list[tuple[str, str, str]], str | None]:
    """``([(tool, input, observation), ...], final answer or None)`` of a v1 continuation."""
    steps = [(m["tool"].strip(), m["input"].strip(), m["obs"].strip()) for m in _STEP_RE.finditer(output)]
    final = _FINAL_RE.search(output)
    return steps, (final["answer"].strip() if final else None)


def convert_record(record: dict) -> list[dict]:
    """One sample per step of ``record`` (none when its output follows neither form)."""
    instruction = record["instruction"] + (("\n" + record["input"]) if record.get("input") else "")
    steps, answer = split_steps(record["output"])
    out, pad = [], ""
    for tool, tool_input, obs in steps:
        target = f"{react.THOUGHT_YES}\n{react.ACTION_PREFIX}{tool}\n{react.ACTION_INPUT_PREFIX}{tool_input}{TOOL_TARGET_SUFFIX}"
        out.append({"instruction": instruction + pad, "input": "", "output": target, "kind": "gpt4tools"})
        pad += react.render_scratchpad([(tool, tool_input, obs)])
    if answer is not None:
        out.append({"instruction": instruction + pad, "input": "", "output": react.render_final_step(answer),
                    "kind": "gpt4tools_final" if steps else "gpt4tools_no_tool"})
    return out


def convert_gpt4tools(path: str | Path, drop_heldout: bool = True) -> tuple[list[dict], dict]:
    """All samples of the file, and counts of what was kept and dropped."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist (download gpt4tools_71k.json from the GPT4Tools release)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not JSON: {e}") from e
    if not isinstance(data, list):
        raise ValueError(f"{p} must hold a JSON list of records")
    held = heldout_names()
    stats = {"records": len(data), "samples": 0, "dropped_heldout": 0, "dropped_unparsable": 0}
    out: list[dict] = []
    for i, r in enumerate(data):
        if not isinstance(r, dict) or not isinstance(r.get("instruction"), str) or not isinstance(r.get("output"), str):
            raise ValueError(f"{p} record {i} lacks a string 'instruction' and 'output'")
        if drop_heldout and set(_TOOL_LINE.findall(r["instruction"])) & held:
            stats["dropped_heldout"] += 1
            continue
        samples = convert_record(r)
        if not samples:
            stats["dropped_unparsable"] += 1
            continue
        out.extend(samples)
    stats["samples"] = len(out)
    return out, stats
