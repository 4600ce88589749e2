"""The shipped adapter: it is the package default, small, documented, and it makes the embedded
model call the right tool with the conversation's file name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from efe_langchain.llm import package_adapter_dir

ADAPTER = Path(__file__).resolve().parents[1] / "efe_langchain" / "adapters" / "smollm2-135m-efe"


def test_shipped_adapter_is_the_default_and_small():
    assert package_adapter_dir("default") == ADAPTER
    cfg = json.loads((ADAPTER / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 32
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (ADAPTER / "adapter_model.safetensors").stat().st_size < 20_000_000
    card = (ADAPTER / "README.md").read_text()
    for needed in ("## Data", "## Training", "## Scores", "--lora_r 32", "val_handwritten"):
        assert needed in card


@pytest.mark.slow
def test_embedded_model_with_default_adapter_calls_the_right_tool():
    from efe_langchain.evaluation.records import tool_choices
    from efe_langchain.llm import load_embedded_llm
    from efe_langchain.react import ToolCall, parse

    llm = load_embedded_llm(max_new_tokens=32)
    assert "LoRA" in llm.model_name
    rec = json.loads((Path(__file__).resolve().parents[1] / "evaluation" / "data" / "val_handwritten.json").read_text())[0]
    out = llm.react_step(rec["instruction"], tool_choices(rec["instruction"]))
    call = parse(out)
    assert isinstance(call, ToolCall)
    assert call.tool == rec["Action"][0] and call.tool_input == ", ".join(rec["Action Input"][0])
