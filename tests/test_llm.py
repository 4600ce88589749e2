"""LocalLLM: a LangChain LLM over a local causal LM (tiny random models, plus one real SmolLM2 run)."""

from __future__ import annotations

import pytest
import torch
from langchain_core.callbacks import BaseCallbackHandler

from efe_langchain.llm import LocalLLM, ToolChoice, load_embedded_llm, package_adapter_dir
from efe_langchain.prompts import load_tool_specs
from efe_langchain.react import FinalAnswer, ToolCall, parse, render_image_turn, render_prompt, split_args

PROMPT = "Human: Describe the picture in a few words.\nAI:"


class _Tokens(BaseCallbackHandler):
    def __init__(self):
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs) -> None:
        self.tokens.append(token)


def test_is_a_langchain_llm(tiny_llm):
    out = tiny_llm.invoke(PROMPT, max_new_tokens=5)
    assert isinstance(out, str) and out
    assert tiny_llm._llm_type == "efe-local-hf"
    assert tiny_llm.batch([PROMPT, "Hello"], max_new_tokens=3)[0] == tiny_llm.invoke(PROMPT, max_new_tokens=3)


def test_stop_string_ends_generation_and_is_cut(tiny_llm):
    full = tiny_llm.invoke(PROMPT, max_new_tokens=24)
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop.strip(), f"need a visible stop string from {full!r}"
    forwards = tiny_llm.decoder.stats["forwards"]
    cut = tiny_llm.invoke(PROMPT, stop=[stop], max_new_tokens=24)
    assert cut == full[: full.find(stop)]
    assert tiny_llm.decoder.stats["forwards"] - forwards < 24, "generation must stop at the stop string"


def test_streams_token_by_token_with_callbacks(tiny_llm):
    handler = _Tokens()
    chunks = list(tiny_llm.stream(PROMPT, max_new_tokens=12, config={"callbacks": [handler]}))
    assert len(chunks) > 3
    assert "".join(chunks) == tiny_llm.invoke(PROMPT, max_new_tokens=12)
    assert handler.tokens == chunks


def test_generate_batch_left_pads_like_single_greedy_runs(tiny_llm):
    prompts = [PROMPT, "Hi", "Human: what is in image/ab12cd34.png?\nAI: I will check.\nHuman: thanks\nAI:"]
    batched = tiny_llm.generate_batch(prompts, max_new_tokens=6, stop=(), batch_size=3)
    singles = tiny_llm.generate_batch(prompts, max_new_tokens=6, stop=(), batch_size=1)
    assert batched == singles
    assert all(batched)


def test_generate_batch_cuts_before_stop(tiny_llm):
    full = tiny_llm.generate_batch([PROMPT], max_new_tokens=16, stop=())[0]
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = tiny_llm.generate_batch([PROMPT], max_new_tokens=16, stop=(stop,))[0]
    assert cut == full[: full.find(stop)]


def test_react_step_constrained_and_free(tiny_llm):
    specs = load_tool_specs()[:6]
    prompt = render_prompt(specs, render_image_turn("image/ab12cd34.png", "a cat"), "edges please", "")
    tools = [ToolChoice.from_tool(s) for s in specs]
    text = tiny_llm.react_step(prompt, tools)
    result = parse(text, [s.name for s in specs])
    assert isinstance(result, (ToolCall, FinalAnswer))
    call = tiny_llm.decoder.tool_call(prompt, tools)
    assert parse(call, [s.name for s in specs]).tool_input.startswith("image/ab12cd34.png")
    free = tiny_llm.react_step(prompt, tools, constrained=False)
    assert "Observation:" not in free
    batch = tiny_llm.react_batch([prompt, prompt], [tools, tools], [None, None])
    assert batch == [text, text]


def test_quantization_on_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="CUDA"):
        LocalLLM.from_pretrained(str(tmp_path), device="cpu", quantization="8bit")
    with pytest.raises(ValueError, match="CUDA"):
        LocalLLM.from_pretrained(str(tmp_path), device="cpu", quantization="4bit")
    with pytest.raises(ValueError, match="quantization must be"):
        LocalLLM.from_pretrained(str(tmp_path), device="cpu", quantization="3bit")


def test_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="cannot load model"):
        LocalLLM.from_pretrained(str(tmp_path / "nothing-here"), device="cpu")


@pytest.fixture(scope="module")
def saved_base_and_lora(tiny_lm, tmp_path_factory):
    """A tiny base model saved to disk and a LoRA adapter for it saved in the PEFT format."""
    from peft import LoraConfig, get_peft_model

    from conftest import build_tiny_lm

    _, tok = tiny_lm
    root = tmp_path_factory.mktemp("lora")
    base = build_tiny_lm(tok, seed=7)
    base.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    # Non-zero B so the adapter changes outputs (the default init makes LoRA an exact no-op).
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    peft_model = get_peft_model(build_tiny_lm(tok, seed=7), cfg)
    peft_model.save_pretrained(root / "adapter")
    return root / "base", root / "adapter"


def _logits(llm: LocalLLM, text: str) -> torch.Tensor:
    ids = llm.tokenizer(text, return_tensors="pt").input_ids
    with torch.inference_mode():
        return llm.model(input_ids=ids).logits[0, -1]


def test_lora_adapter_loads_in_peft_format(saved_base_and_lora):
    base_dir, adapter_dir = saved_base_and_lora
    base = LocalLLM.from_pretrained(str(base_dir), device="cpu")
    tuned = LocalLLM.from_pretrained(str(base_dir), adapters=[str(adapter_dir)], device="cpu")
    merged = LocalLLM.from_pretrained(str(base_dir), adapters=[str(adapter_dir)], device="cpu", merge_adapters=True)
    from peft import PeftModel

    assert isinstance(tuned.model, PeftModel)
    assert type(merged.model).__name__ == "LlamaForCausalLM"
    assert str(adapter_dir) in tuned.model_name
    a, b, m = _logits(base, PROMPT), _logits(tuned, PROMPT), _logits(merged, PROMPT)
    assert not torch.allclose(a, b, atol=1e-4), "the adapter must change the model"
    assert torch.allclose(b, m, atol=1e-4), "merging must not change what the adapter computes"
    assert tuned.invoke(PROMPT, max_new_tokens=6) == merged.invoke(PROMPT, max_new_tokens=6)
    # Constrained decoding runs through the PEFT wrapper too.
    specs = load_tool_specs()[:3]
    prompt = render_prompt(specs, render_image_turn("image/ab12cd34.png", "a cat"), "hi", "")
    assert tuned.decoder.tool_call(prompt, [ToolChoice.from_tool(s) for s in specs]).count("Action:") == 1


def test_a_missing_adapter_is_a_clear_error(saved_base_and_lora, tmp_path):
    base_dir, _ = saved_base_and_lora
    with pytest.raises(OSError, match="adapter_config.json"):
        LocalLLM.from_pretrained(str(base_dir), adapters=[str(tmp_path)], device="cpu")


def test_default_adapter_is_optional():
    # Until the fine-tuning issue ships one, "default" means the base model alone.
    found = package_adapter_dir("default")
    assert found is None or (found / "adapter_config.json").is_file()


@pytest.mark.slow
def test_real_embedded_smollm2_generates_a_react_step(embedded_llm):
    assert "SmolLM2-135M-Instruct" in embedded_llm.model_name
    assert embedded_llm.model.config.num_hidden_layers == 30
    specs = [s for s in load_tool_specs() if s.name in ("Edge Detection On Image", "Get Photo Description", "Generate Image Condition On Canny Image")]
    prompt = render_prompt(specs, render_image_turn("image/ab12cd34.png", "a dog on the grass"), "Detect the edges of image/ab12cd34.png", "")
    tools = [ToolChoice.from_tool(s) for s in specs]
    call = embedded_llm.decoder.tool_call(prompt, tools)
    result = parse(call, [s.name for s in specs])
    assert isinstance(result, ToolCall)
    spec = next(s for s in specs if s.name == result.tool)
    assert split_args(result.tool_input, spec.n_args)[0] == "image/ab12cd34.png"
    text = embedded_llm.invoke("Human: Say hello.\nAI:", max_new_tokens=8, stop=["\n"])
    assert text.strip() and "\n" not in text


def test_counts_tokens_with_its_own_tokenizer(tiny_llm):
    # LangChain's default get_num_tokens downloads GPT-2's tokenizer; ours must work offline.
    text = "Thought: Do I need to use a tool? Yes\nAction: Edge Detection On Image"
    assert tiny_llm.get_num_tokens(text) == len(tiny_llm.tokenizer(text, add_special_tokens=False).input_ids) == 19
    assert tiny_llm.context_length == 4096


def test_tool_orders_default_and_validation(tiny_lm):
    from pydantic import ValidationError

    from efe_langchain.llm import LocalLLM

    model, tok = tiny_lm
    llm = LocalLLM.from_model(model, tok)
    assert llm.tool_orders == 3 and llm.decoder.tool_orders == 3
    assert LocalLLM.from_model(model, tok, tool_orders=1).decoder.tool_orders == 1
    with pytest.raises(ValidationError):
        LocalLLM.from_model(model, tok, tool_orders=0)
