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


DATA = Path(__file__).resolve().parents[1] / "evaluation" / "data"


@pytest.fixture(scope="module")
def adapted_llm():
    from efe_langchain.llm import load_embedded_llm

    llm = load_embedded_llm(max_new_tokens=32)
    assert "LoRA" in llm.model_name
    return llm


@pytest.mark.slow
def test_embedded_model_with_default_adapter_calls_the_right_tool(adapted_llm):
    from efe_langchain.evaluation.records import tool_choices
    from efe_langchain.react import ToolCall, parse

    rec = json.loads((DATA / "val_handwritten.json").read_text())[0]
    out = adapted_llm.react_step(rec["instruction"], tool_choices(rec["instruction"]))
    call = parse(out)
    assert isinstance(call, ToolCall)
    assert call.tool == rec["Action"][0] and call.tool_input == ", ".join(rec["Action Input"][0])


@pytest.mark.slow
def test_constrained_decoding_copies_a_number_from_the_request(adapted_llm):
    # "I'd like to turn uploads/IMG_6611.jpg 270 degrees" with a tool never trained on: the tokenizer
    # writes " 270" as " ", "2", "7", "0", and the constrained decoder once banned that first " ",
    # so the model wrote "two" instead.
    from efe_langchain.evaluation.records import tool_choices
    from efe_langchain.react import parse

    rec = next(r for r in json.loads((DATA / "test_unseen.json").read_text()) if r["id"] == 3)
    assert "270 degrees" in rec["instruction"]
    call = parse(adapted_llm.react_step(rec["instruction"], tool_choices(rec["instruction"])))
    assert call.tool == "Rotate Image By Angle" and call.tool_input.startswith("uploads/IMG_6611.jpg, 270")
