"""``efe merge``: a LoRA adapter on a tiny model is folded into the weights and saved."""

from __future__ import annotations

import json

import pytest
import torch

from efe_langchain import cli


@pytest.fixture(scope="module")
def base_and_adapter(tiny_lm, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_lm
    root = tmp_path_factory.mktemp("merge")
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    torch.manual_seed(1)
    # init_lora_weights=False: a random (non-zero) B, so the adapter really changes the outputs
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(root / "adapter")
    ids = tokenizer("Thought: Do I need to use a tool? No\nAI: hello", return_tensors="pt")
    with torch.inference_mode():
        with_adapter = peft_model(**ids).logits
        with peft_model.disable_adapter():
            without = peft_model(**ids).logits
    peft_model.unload()  # give the session fixture its plain model back
    return root, ids, with_adapter, without


def test_merge_folds_the_adapter_into_the_weights(base_and_adapter, capsys):
    from transformers import AutoModelForCausalLM

    root, ids, with_adapter, without = base_and_adapter
    assert (with_adapter - without).abs().max() > 1e-3  # the adapter matters
    out = root / "merged"
    assert cli.main(["merge", str(root / "base"), str(root / "adapter"), str(out)]) == 0
    assert "check passed" in capsys.readouterr().out

    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.inference_mode():
        got = merged(**ids).logits
    assert torch.allclose(got, with_adapter, atol=1e-4)
    report = json.loads((out / "efe_merge.json").read_text())
    assert report["check"] == "passed" and report["max_logit_diff_reloaded"] < 1e-3
    assert (out / "tokenizer.json").is_file() or (out / "tokenizer_config.json").is_file()

    # the output folder is never overwritten by accident
    assert cli.main(["merge", str(root / "base"), str(root / "adapter"), str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_merge_refuses_a_folder_that_is_not_an_adapter(base_and_adapter, capsys):
    root = base_and_adapter[0]
    assert cli.main(["merge", str(root / "base"), str(root / "base"), str(root / "x")]) == 2
    assert "not a PEFT adapter folder" in capsys.readouterr().err
    assert not (root / "x").exists()


@pytest.mark.slow
def test_merge_onto_the_embedded_gguf_base(tmp_path, capsys):
    """A GGUF base is dequantized, merged and saved as a plain transformers folder."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from efe_langchain.embedded import embedded_model_dir, smollm2_gguf_path

    model = AutoModelForCausalLM.from_pretrained(str(embedded_model_dir()))
    torch.manual_seed(0)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)).save_pretrained(tmp_path / "adapter")
    gguf = smollm2_gguf_path()
    args = ["merge", str(gguf.parent), str(tmp_path / "adapter"), str(tmp_path / "out"), "--gguf-file", gguf.name]
    assert cli.main(args) == 0
    assert "check passed" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "efe_merge.json").read_text())
    assert report["gguf_file"] == gguf.name and report["max_logit_diff_reloaded"] < 1e-3
    assert (tmp_path / "out" / "model.safetensors").is_file()
