"""Fast, schema-constrained ReAct decoding for a local causal LM.

One ReAct step is mostly fixed text (``Thought: Do I need to use a tool?``, ``\\nAction:``,
``\\nAction Input:``) or a choice among known candidates (the listed tool names, the image paths of
the conversation). So instead of decoding it token by token we

* keep the KV cache of the last sequence and reuse its longest common token prefix with the next
  one (the GPT4Tools prompt is identical up to the conversation history, and a step's prompt
  extends the previous step's);
* feed fixed text in one forward pass;
* score all candidates of a choice in ONE forward pass over the cached prefix: the candidates are
  packed into a single row with a tree attention mask (each candidate sees the prefix and its own
  earlier tokens), so the prefix's keys and values are never copied per candidate;
* pick the candidate by the sum of its token log-probabilities (no string matching afterwards);
* optionally (``tool_orders``) score the tool choice again with the tools listed in other orders
  and add the per-order log-probabilities: a small model prefers some list positions, and on tools
  it never saw in training that preference decided one wrong choice in ten; with
  ``order_confidence`` the other orders are scored only when the first is unsure of its pick;
  whether a tool is needed at all (Yes/No) is summed over the same orders, gated the same way;
* decode only free text (text arguments, the final answer) token by token.

Fixed text is cut where the tokenizer would cut it anyway: we force ``"\\nAction:"`` and let the
candidate carry the space (``" Edge Detection On Image"``), because byte-level BPE models rarely
see a lone space token and would be pushed off their training distribution by ``"Action: "``.
The resulting text is byte for byte what the GPT4Tools protocol writes.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from efe_langchain.react import (
    STOP_SEQUENCES,
    THOUGHT_PREFIX,
    extract_image_paths,
    listed_tool_names,
    reorder_prompt_tools,
)

__all__ = ["ToolChoice", "ReActDecoder", "FINAL_ANSWER_STOPS", "DEFAULT_ORDER_CONFIDENCE", "tool_orders"]

# A final answer ends where the model starts a new protocol line or imagines the next turn.
FINAL_ANSWER_STOPS = tuple(STOP_SEQUENCES) + ("\nThought:", "\nAction:")
_NEG_INF = float("-inf")
# (tokenizer id, banned substrings, vocab size) -> mask; decoding the vocabulary takes ~0.5 s.
_BAN_MASKS: dict[tuple, torch.Tensor] = {}


def _only_spaces(text: str) -> bool:
    return bool(text) and set(text) == {" "}


@dataclass(frozen=True)
class ToolChoice:
    """A tool as constrained decoding needs it: its prompt name and argument schema."""

    name: str  # the name listed in the prompt (the GPT4Tools name)
    n_args: int = 1
    takes_image: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "\n" in self.name:
            raise ValueError(f"a tool name must be one non-empty line, not {self.name!r}")
        if int(self.n_args) < 1:
            raise ValueError(f"tool {self.name!r}: n_args must be at least 1, not {self.n_args!r}")

    @classmethod
    def from_tool(cls, tool) -> "ToolChoice":
        """From a ToolSpec, one of our tools (``gpt4tools_name``), or a ToolChoice."""
        if isinstance(tool, ToolChoice):
            return tool
        name = getattr(tool, "gpt4tools_name", None) or getattr(tool, "name")
        takes_image = getattr(tool, "takes_image", None)
        if takes_image is None:
            takes_image = "image_path" in getattr(tool, "description", "")
        return cls(name=name, n_args=int(getattr(tool, "n_args", 1) or 1), takes_image=bool(takes_image))


# The package's order gate (LocalLLM.tool_order_confidence): on the splits of benchmarks/results/
# order_gate_h200_adapter_s6.md no first tool choice changes at 0.95, and 70-90% skip the extra orders.
DEFAULT_ORDER_CONFIDENCE = 0.95


def _leading_path(value: str, image_paths: Sequence[str]) -> str | None:
    """The conversation image path that ``value`` starts with, if any."""
    return next((p for p in image_paths if value == p or value.startswith((f"{p},", f"{p} "))), None)


def _log_normalize(scores: Sequence[float]) -> list[float]:
    return torch.log_softmax(torch.tensor(scores, dtype=torch.float64), dim=0).tolist()


def tool_orders(names: Sequence[str], count: int) -> list[list[str]]:
    """``count`` distinct orders of ``names``, the given order first: then reversed, then rotated
    by one, two, ... places (every name moves, and lands at both ends across the orders)."""
    names = list(names)
    out = [names]
    for cand in [names[::-1]] + [names[k:] + names[:k] for k in range(1, len(names))]:
        if len(out) >= count:
            break
        if cand not in out:
            out.append(cand)
    return out


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    # Compare in big slices first: sequences are hundreds of tokens and usually share most.
    lo = 0
    step = 64
    while lo + step <= n and a[lo : lo + step] == b[lo : lo + step]:
        lo += step
    while lo < n and a[lo] == b[lo]:
        lo += 1
    return lo


class _GeneratedTailStop:
    """Stops each row once its GENERATED text holds a stop string, decoding only its last tokens.

    ``generate(stop_strings=...)`` also matches across the prompt boundary (a prompt ending in "AI:"
    and a generated ":" match "::") and rebuilds a vocabulary-wide table on every call.
    """

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int):
        self.tok, self.stops, self.start = tokenizer, [s for s in stops if s], prompt_len
        # Enough tokens to hold the longest stop string however it is split.
        self.tail = max([8] + [len(tokenizer.encode(s, add_special_tokens=False)) + 2 for s in self.stops])

    def __call__(self, input_ids, scores, **kwargs):
        if not self.stops:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        texts = self.tok.batch_decode(input_ids[:, self.start:][:, -self.tail:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)


def generate_batch(model, tokenizer, prompts: Sequence[str], *, eos_ids: Sequence[int], max_new_tokens: int,
                   stop: Sequence[str] = STOP_SEQUENCES, batch_size: int = 8, progress: bool = False) -> list[str]:
    """Greedy completions with ``model.generate``, left-padded in batches; each cut before its first
    stop string. Every id in ``eos_ids`` ends a row (a LoRA may end its turn with any special token)."""
    from transformers import StoppingCriteriaList
    from tqdm.auto import tqdm

    out: list[str] = []
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        starts = range(0, len(prompts), batch_size)
        for s in tqdm(starts, desc="generate", disable=not progress or len(starts) < 2):
            enc = tokenizer(list(prompts[s : s + batch_size]), return_tensors="pt", padding=True).to(model.device)
            width = enc["input_ids"].shape[1]
            with torch.inference_mode():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(eos_ids),
                                     stopping_criteria=StoppingCriteriaList([_GeneratedTailStop(tokenizer, stop, width)]))
            for row in gen[:, width:]:
                text = tokenizer.decode(row, skip_special_tokens=True)
                cut = min((i for i in (text.find(x) for x in stop if x) if i != -1), default=len(text))
                out.append(text[:cut])
    finally:
        tokenizer.padding_side = old_side
    return out


class ReActDecoder:
    """Holds a model, its tokenizer and one prefix KV cache; decodes ReAct steps.

    Thread-safe (one lock): the cache is shared state. ``use_cache=False`` recomputes everything on
    every call; it exists as the reference the cached path must agree with.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        use_cache: bool = True,
        max_text_arg_tokens: int = 32,
        prompt_lookup: int = 8,
        tool_orders: int = 1,
        order_confidence: float = 0.0,
    ) -> None:
        if int(tool_orders) < 1:
            raise ValueError(f"tool_orders must be at least 1, not {tool_orders!r}")
        if not 0.0 <= float(order_confidence) <= 1.0:
            raise ValueError(f"order_confidence must be a probability in [0, 1], not {order_confidence!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.use_cache = use_cache
        self.max_text_arg_tokens = max_text_arg_tokens
        self.prompt_lookup = prompt_lookup  # draft length for greedy prompt-lookup decoding; 0 = off
        self.lookup_min_ngram = 1  # shortest n-gram whose earlier occurrence proposes a draft
        self.tool_orders = int(tool_orders)  # tool lists scored per choice (1: the prompt's own)
        # Skip the other orders when the first gives its pick at least this probability (0: never skip).
        self.order_confidence = float(order_confidence)
        self.lock = threading.RLock()
        self._ids: list[int] = []
        self._cache = None
        self._logp: torch.Tensor | None = None
        self._piece_cache: dict[str, list[int]] = {}
        # One more prefix cache per extra tool order: consecutive turns list the tools the same way,
        # so each order's prompt then extends its own previous prompt, as the main one does.
        self._order_states: dict[int, tuple] = {}
        self.stats = {"forwards": 0, "tokens_computed": 0, "tokens_reused": 0, "orders_skipped": 0,
                      "yes_no_orders_skipped": 0, "path_args_retried": 0}
        eos = set()
        for src in (getattr(tokenizer, "eos_token_id", None), getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
            if isinstance(src, int):
                eos.add(src)
            elif src:
                eos.update(int(x) for x in src)
        # ReAct text never contains special tokens, and a LoRA may learn to end its turn with any
        # of the chat template's markers (ours ends with <|im_start|>), so each one ends the text.
        eos.update(int(x) for x in getattr(tokenizer, "all_special_ids", ()) or ())
        self.eos_ids = eos

    # ---------------------------------------------------------------- tokens
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int | None:
        config = getattr(self.model, "config", None)
        return getattr(config, "max_position_embeddings", None)

    def encode_prompt(self, text: str) -> list[int]:
        """The prompt as ``generate`` would see it (with the tokenizer's BOS where it adds one)."""
        if not isinstance(text, str):
            raise TypeError(f"the prompt must be a str, not {type(text).__name__}")
        ids = list(self.tokenizer(text, add_special_tokens=True).input_ids)
        limit = self.context_length
        if limit and len(ids) >= limit:
            raise ValueError(
                f"the prompt has {len(ids)} tokens but the model's context is {limit}; "
                "trim the conversation history (the agent does this by token budget)"
            )
        if not ids:
            raise ValueError("the prompt is empty")
        return ids

    def encode_piece(self, text: str) -> list[int]:
        """Tokens of ``text`` appended mid-sequence (no BOS, no sentencepiece dummy space)."""
        ids = self._piece_cache.get(text)
        if ids is None:
            ids = list(self.tokenizer(text, add_special_tokens=False).input_ids)
            if self.tokenizer.decode(ids) != text:
                # Sentencepiece tokenizers prepend a space to each separately encoded string;
                # encoding after an anchor and dropping the anchor's tokens avoids it.
                anchor = list(self.tokenizer("x", add_special_tokens=False).input_ids)
                both = list(self.tokenizer("x" + text, add_special_tokens=False).input_ids)
                if both[: len(anchor)] == anchor:
                    ids = both[len(anchor) :]
            self._piece_cache[text] = ids
        return list(ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # ---------------------------------------------------------------- cache
    def reset(self) -> None:
        """Drop the cached prefix (frees its memory)."""
        with self.lock:
            self._ids, self._cache, self._logp = [], None, None
            self._order_states.clear()

    @property
    def cached_tokens(self) -> int:
        return len(self._ids)

    def _crop(self, length: int) -> None:
        have = self._cache.get_seq_length()
        if have > length:
            self._cache.crop(length - have)  # transformers 5: a negative count of tokens to drop

    @torch.inference_mode()
    def advance(self, ids: Sequence[int]) -> torch.Tensor:
        """Log-probabilities of the token after ``ids``; computes only what the cache lacks."""
        ids = list(ids)
        if not ids:
            raise ValueError("cannot decode after an empty sequence")
        keep = _common_prefix(self._ids, ids) if (self.use_cache and self._cache is not None) else 0
        if keep == len(ids) == len(self._ids) and self._logp is not None:
            self.stats["tokens_reused"] += keep
            return self._logp
        keep = min(keep, len(ids) - 1)  # at least one token goes through to give logits
        if keep == 0:
            self._cache = None
        else:
            self._crop(keep)
        new = ids[keep:]
        out = self.model(
            input_ids=torch.tensor([new], device=self.device),
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._cache = out.past_key_values
        self._ids = ids
        self._logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        self.stats["forwards"] += 1
        self.stats["tokens_computed"] += len(new)
        self.stats["tokens_reused"] += keep
        return self._logp

    @torch.inference_mode()
    def score(self, prefix: Sequence[int], candidates: Sequence[Sequence[int]]) -> list[float]:
        """Sum of token log-probs of each candidate after ``prefix``, in ONE forward pass.

        The pass feeds what the cache lacks of ``prefix`` (forced text) followed by the candidates
        as a token trie (shared beginnings such as " Generate Image Condition On" fed once); a 4D
        mask lets each trie node see the prefix and its own ancestors only, and positions are set
        as if each candidate directly followed the prefix.
        """
        prefix = list(prefix)
        if not prefix:
            raise ValueError("cannot score after an empty sequence")
        if not candidates:
            return []
        if any(len(c) == 0 for c in candidates):
            raise ValueError("empty candidate")
        # Token trie: node = (token, parent); a candidate is a path of nodes.
        tok: list[int] = []
        parent: list[int] = []
        depth: list[int] = []
        index: dict[tuple[int, int], int] = {}
        paths: list[list[int]] = []
        for cand in candidates:
            node, path = -1, []
            for t in cand:
                nxt = index.get((node, int(t)))
                if nxt is None:
                    nxt = len(tok)
                    index[(node, int(t))] = nxt
                    tok.append(int(t))
                    parent.append(node)
                    depth.append(0 if node < 0 else depth[node] + 1)
                path.append(nxt)
                node = nxt
            paths.append(path)
        # Only nodes with children predict a token we need; parents precede children in `tok`.
        fed = sorted({p for p in parent if p >= 0})
        if not fed:
            logp0 = self.advance(prefix)
            return [float(logp0[c[0]]) for c in candidates]

        keep = _common_prefix(self._ids, prefix) if (self.use_cache and self._cache is not None) else 0
        exact = keep == len(prefix) == len(self._ids) and self._logp is not None
        if not exact:
            keep = min(keep, len(prefix) - 1)
        forced = [] if exact else prefix[keep:]
        if keep == 0:
            self._cache = None
        else:
            self._crop(keep)
        n_f, n_c = len(forced), len(fed)
        total = n_f + n_c
        dtype = self.model.dtype if self.model.dtype.is_floating_point else torch.float32
        mask = torch.full((total, keep + total), torch.finfo(dtype).min, dtype=dtype)
        mask[:, :keep] = 0
        if n_f:
            mask[:n_f, keep : keep + n_f].masked_fill_(torch.ones(n_f, n_f, dtype=torch.bool).tril(), 0)
            mask[n_f:, keep : keep + n_f] = 0
        row = {node: i for i, node in enumerate(fed)}
        for i, node in enumerate(fed):
            a = node
            while a >= 0:
                mask[n_f + i, keep + n_f + row[a]] = 0
                a = parent[a]
        positions = list(range(keep, keep + n_f)) + [len(prefix) + depth[node] for node in fed]
        out = self.model(
            input_ids=torch.tensor([forced + [tok[n] for n in fed]], device=self.device),
            position_ids=torch.tensor([positions], device=self.device),
            attention_mask=mask[None, None].to(self.device),
            past_key_values=self._cache,
            use_cache=True,
            # Logits only where they are needed: the last forced token and the trie nodes.
            logits_to_keep=n_c + (1 if n_f else 0),
        )
        self._cache = out.past_key_values
        self._crop(len(prefix))  # the candidates' keys must not leak into the next sequence
        self.stats["forwards"] += 1
        self.stats["tokens_computed"] += total
        self.stats["tokens_reused"] += keep
        logp = torch.log_softmax(out.logits[0].float(), dim=-1)
        if n_f:
            self._ids, self._logp = prefix, logp[0]
            logp = logp[1:]
        logp0 = self._logp
        scores = []
        for cand, path in zip(candidates, paths):
            total_lp = float(logp0[cand[0]])
            for j in range(1, len(cand)):
                total_lp += float(logp[row[path[j - 1]], cand[j]])
            scores.append(total_lp)
        return scores

    def choose(self, prefix: Sequence[int], options: Sequence[str]) -> tuple[int, list[int]]:
        """Index and tokens of the most likely text among ``options`` after ``prefix``."""
        cands = [self.encode_piece(o) for o in options]
        if len(cands) == 1:
            return 0, cands[0]  # nothing to choose: no forward pass
        scores = self.score(prefix, cands)
        best = max(range(len(options)), key=scores.__getitem__)
        return best, cands[best]

    # ---------------------------------------------------------------- free text
    def _ban_mask(self, banned_substrings: tuple[str, ...], size: int, allow_spaces: bool = False) -> torch.Tensor:
        """Tokens that may not START a text argument (they would end it empty).

        With ``allow_spaces`` a token of spaces alone may come first: SmolLM2 and Llama-style
        tokenizers write " 270" as " ", "2", "7", "0", so banning it would forbid every number.
        """
        key = (id(self.tokenizer), banned_substrings, size, allow_spaces)
        mask = _BAN_MASKS.get(key)
        if mask is None:
            n = min(size, len(self.tokenizer))
            texts = self.tokenizer.batch_decode([[i] for i in range(n)])
            flags = [
                (not t.strip() and not (allow_spaces and _only_spaces(t))) or any(s in t for s in banned_substrings)
                for t in texts
            ]
            flags += [True] * (size - n)  # ids past the tokenizer's vocabulary are padding rows
            mask = torch.tensor(flags, dtype=torch.bool)
            for e in self.eos_ids:
                if e < size:
                    mask[e] = True
            _BAN_MASKS[key] = mask
        return mask

    def _draft(self, ids: Sequence[int]) -> list[int]:
        """Prompt-lookup guess of the next tokens: what followed the last n-gram's latest earlier
        occurrence (arguments and answers mostly copy words of the conversation)."""
        k = self.prompt_lookup
        size = len(ids)
        for n in range(3, self.lookup_min_ngram - 1, -1):
            if size <= n:
                continue
            tail = list(ids[size - n :])
            first = tail[0]
            for start in range(size - n - 1, -1, -1):
                if ids[start] == first and list(ids[start : start + n]) == tail:
                    return list(ids[start + n : start + n + k])
        return []

    @torch.inference_mode()
    def _advance_draft(self, ids: list[int], draft: list[int]) -> torch.Tensor:
        """Log-probs after ``ids`` and after each draft token (len(draft) + 1 rows), one pass."""
        full = ids + draft
        keep = _common_prefix(self._ids, full) if (self.use_cache and self._cache is not None) else 0
        keep = min(keep, len(ids) - 1)
        if keep == 0:
            self._cache = None
        else:
            self._crop(keep)
        new = full[keep:]
        out = self.model(
            input_ids=torch.tensor([new], device=self.device),
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=len(draft) + 1,
        )
        self._cache = out.past_key_values
        rows = torch.log_softmax(out.logits[0].float(), dim=-1)
        self._ids, self._logp = full, rows[-1]
        self.stats["forwards"] += 1
        self.stats["tokens_computed"] += len(new)
        self.stats["tokens_reused"] += keep
        return rows

    def _tokens(self, ids: list[int], max_new_tokens: int, ban_first, temperature: float, generator) -> Iterator[int]:
        """Next tokens after ``ids`` (the consumer appends each to ``ids`` before asking again).

        Greedy decoding checks a prompt-lookup draft in the same forward pass as the next token and
        keeps the draft tokens the model would have chosen itself, so the output is exactly the
        greedy output, several tokens per pass when the model copies.
        """
        sampling = bool(temperature and temperature > 0)
        done = 0
        blank = True  # nothing but spaces generated yet: ban_first still applies
        while done < max_new_tokens:
            draft = [] if sampling or not self.prompt_lookup else self._draft(ids)[: max_new_tokens - done - 1]
            rows = self._advance_draft(ids, draft) if draft else self.advance(ids)[None]
            picked: list[int] = []
            for j in range(rows.shape[0]):
                logp = rows[j]
                if blank and ban_first is not None:
                    mask = self._ban_mask(ban_first, logp.shape[-1], allow_spaces=done + j == 0)
                    logp = logp.masked_fill(mask.to(logp.device), _NEG_INF)
                if sampling:
                    tok = int(torch.multinomial(torch.softmax(logp / temperature, dim=-1), 1, generator=generator))
                else:
                    tok = int(torch.argmax(logp))
                picked.append(tok)
                blank = blank and _only_spaces(self.tokenizer.decode([tok]))
                if j >= len(draft) or tok != draft[j]:
                    break
            if draft:
                # The cache holds ids + the whole draft; keep only the confirmed part.
                confirmed = len(picked) - 1
                self._crop(len(ids) + confirmed)
                self._ids = self._ids[: len(ids) + confirmed]
                self._logp = rows[confirmed]
            for tok in picked:
                done += 1
                yield tok

    def iter_free(
        self,
        ids: list[int],
        *,
        stop: Sequence[str] = (),
        max_new_tokens: int = 128,
        ban_first: tuple[str, ...] | None = None,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Iterator[str]:
        """Decode after ``ids``, yielding text as soon as it cannot be part of a stop string.

        Stops at EOS, at ``max_new_tokens`` or at the first stop string (which is never yielded).
        ``ids`` is extended in place with the generated tokens (the caller continues from there).
        """
        gen: list[int] = []
        emitted = 0
        text = ""
        for tok in self._tokens(ids, max_new_tokens, ban_first, temperature, generator):
            if tok in self.eos_ids:
                break
            gen.append(tok)
            ids.append(tok)
            text = self.decode(gen)
            cut = min((j for j in (text.find(s) for s in stop if s) if j != -1), default=-1)
            if cut != -1:
                text = text[:cut]
                break
            # Hold back a tail that may still become a stop string, or a half-decoded character.
            safe = len(text)
            for s in stop:
                for k in range(min(len(s) - 1, len(text)), 0, -1):
                    if text.endswith(s[:k]):
                        safe = min(safe, len(text) - k)
                        break
            if text.endswith("\ufffd"):
                safe = min(safe, len(text) - 1)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        if len(text) > emitted:
            yield text[emitted:]

    def complete(self, prompt: str, *, stop: Sequence[str] = (), max_new_tokens: int = 128, **kw) -> str:
        """Free (unconstrained) greedy completion of ``prompt`` with the prefix cache."""
        with self.lock:
            return "".join(self.iter_free(self.encode_prompt(prompt), stop=stop, max_new_tokens=max_new_tokens, **kw))

    def stream(self, prompt: str, *, stop: Sequence[str] = (), max_new_tokens: int = 128, **kw) -> Iterator[str]:
        with self.lock:
            yield from self.iter_free(self.encode_prompt(prompt), stop=stop, max_new_tokens=max_new_tokens, **kw)

    # ---------------------------------------------------------------- one ReAct step
    def step(
        self,
        prompt: str,
        tools: Sequence[ToolChoice],
        image_paths: Sequence[str] | None = None,
        constrained: bool = True,
        max_new_tokens: int = 128,
    ) -> str:
        """One ReAct step as text (never containing ``Observation:``).

        ``image_paths``: the images a tool may receive; None reads them from the prompt.
        """
        with self.lock:
            if not constrained:
                text = "".join(self.iter_free(self.encode_prompt(prompt), stop=STOP_SEQUENCES, max_new_tokens=max_new_tokens))
                return text.rstrip()
            return self._constrained_step(prompt, [ToolChoice.from_tool(t) for t in tools], image_paths, max_new_tokens)

    def _constrained_step(self, prompt, tools: list[ToolChoice], image_paths, max_new_tokens: int) -> str:
        ids = self.encode_prompt(prompt) + self.encode_piece(THOUGHT_PREFIX)
        if not tools:
            return self._final_answer(ids, max_new_tokens)
        # One pass decides both: the new part of the prompt, then " No" and every
        # " Yes\nAction: <tool>\n" as a trie. Yes/No compares the first word only; the tool
        # scores share the " Yes\nAction:" part, so their order is the order of the names alone.
        yes, no, action = self.encode_piece(" Yes"), self.encode_piece(" No"), self.encode_piece("\nAction:")
        names = [self.encode_piece(f" {t.name}\n") for t in tools]
        scores = self.score(ids, [no] + [yes + action + n for n in names])
        yes_no = self.score(ids, [yes, no])  # cached: no extra pass for one-token words
        if self._yes_no_margin(prompt, tools, yes_no[0] - yes_no[1]) < 0:
            return self._final_answer(ids, max_new_tokens)
        best = self._pick_tool(prompt, tools, scores[1:])
        return self._tool_call(ids, tools, image_paths, prompt, chosen=best)

    def _pick_tool(self, prompt: str, tools: list[ToolChoice], scores: Sequence[float]) -> int:
        """The tool with the best score, summed over ``tool_orders`` listings of the tools.

        ``scores`` are the tools' scores under the prompt as given. Each order's scores are
        normalised over the tools first (their shared prefix differs between orders). A prompt
        whose tools are not in GPT4Tools' layout is scored as given only. The other orders are
        not consulted when the first is at least ``order_confidence`` sure of its pick.
        """
        orders = self._scores_by_order(prompt, tools, scores)
        total = next(orders)
        if self.order_confidence and self._orders_apply(prompt, tools) and math.exp(max(total)) >= self.order_confidence:
            self.stats["orders_skipped"] += 1
        else:
            for extra in orders:
                total = [a + b for a, b in zip(total, extra)]
        return max(range(len(tools)), key=total.__getitem__)

    def _yes_no_margin(self, prompt: str, tools: list[ToolChoice], margin: float) -> float:
        """log P(Yes) - log P(No), summed over ``tool_orders`` listings of the tools like the tool
        pick: whether a tool is needed depends on the list's order too (session 9, adapter_s6's
        first steps on the CPU: "what kind of food is on the table?" was No by 0.38 in the prompt's
        order, Yes by 2.4 and 2.0 in the two others). Skipped when the first order is at least
        ``order_confidence`` sure."""
        if not self._orders_apply(prompt, tools):
            return margin
        if self.order_confidence and 1.0 / (1.0 + math.exp(-abs(margin))) >= self.order_confidence:
            self.stats["yes_no_orders_skipped"] += 1
            return margin
        return margin + sum(self._other_yes_no_margins(prompt))

    def yes_no_margins_by_order(self, prompt: str, tools: Sequence[ToolChoice]) -> list[float]:
        """log P(Yes) - log P(No) under each tool order, the prompt's own first: what
        ``_yes_no_margin`` sums (for studying it, ``benchmarks/yes_no_orders.py``)."""
        with self.lock:
            tools = [ToolChoice.from_tool(t) for t in tools]
            yes, no = self.score(self.encode_prompt(prompt) + self.encode_piece(THOUGHT_PREFIX),
                                 [self.encode_piece(" Yes"), self.encode_piece(" No")])
            others = list(self._other_yes_no_margins(prompt)) if self._orders_apply(prompt, tools) else []
            return [yes - no] + others

    def _other_yes_no_margins(self, prompt: str) -> Iterator[float]:
        yes, no = self.encode_piece(" Yes"), self.encode_piece(" No")
        for k, text in self._other_orders(prompt):
            with self._order_state(k):
                scores = self.score(self.encode_prompt(text) + self.encode_piece(THOUGHT_PREFIX), [yes, no])
            yield scores[0] - scores[1]

    def tool_scores_by_order(self, prompt: str, tools: Sequence[ToolChoice]) -> list[list[float]]:
        """Each tool order's log-probabilities of the tools (normalised over them), the prompt's own
        order first: what ``_pick_tool`` sums (for studying the order gate)."""
        with self.lock:
            tools = [ToolChoice.from_tool(t) for t in tools]
            ids = self.encode_prompt(prompt) + self.encode_piece(THOUGHT_PREFIX)
            ids += self.encode_piece(" Yes") + self.encode_piece("\nAction:")
            first = self.score(ids, [self.encode_piece(f" {t.name}\n") for t in tools])
            return list(self._scores_by_order(prompt, tools, first))

    def _orders_apply(self, prompt: str, tools: list[ToolChoice]) -> bool:
        if self.tool_orders < 2 or len(tools) < 2:
            return False
        return sorted(listed_tool_names(prompt)) == sorted(t.name for t in tools)

    def _scores_by_order(self, prompt: str, tools: list[ToolChoice], scores: Sequence[float]) -> Iterator[list[float]]:
        yield _log_normalize(scores) if len(tools) > 1 else list(scores)
        if not self._orders_apply(prompt, tools):
            return
        head = self.encode_piece(THOUGHT_PREFIX) + self.encode_piece(" Yes") + self.encode_piece("\nAction:")
        cands = [self.encode_piece(f" {t.name}\n") for t in tools]
        for k, text in self._other_orders(prompt):
            with self._order_state(k):
                extra = _log_normalize(self.score(self.encode_prompt(text) + head, cands))
            yield extra

    def _other_orders(self, prompt: str) -> Iterator[tuple[int, str]]:
        """(order number, the prompt with its tools listed in that order) for orders 2..tool_orders."""
        for k, order in enumerate(tool_orders(listed_tool_names(prompt), self.tool_orders)[1:], start=1):
            text = reorder_prompt_tools(prompt, order)
            if text is not None:
                yield k, text

    @contextmanager
    def _order_state(self, k: int) -> Iterator[None]:
        """Score under order ``k``'s own prefix cache, then put the main one back."""
        main = (self._ids, self._cache, self._logp)
        try:
            self._ids, self._cache, self._logp = self._order_states.get(k, ([], None, None))
            yield
            self._order_states[k] = (self._ids, self._cache, self._logp)
        finally:
            self._ids, self._cache, self._logp = main

    def tool_call(self, prompt: str, tools: Sequence[ToolChoice], image_paths: Sequence[str] | None = None) -> str:
        """The constrained step given that a tool is used (evaluation asks "which tool, if one?")."""
        if not tools:
            raise ValueError("a tool call needs at least one listed tool")
        with self.lock:
            ids = self.encode_prompt(prompt) + self.encode_piece(THOUGHT_PREFIX)
            return self._tool_call(ids, [ToolChoice.from_tool(t) for t in tools], image_paths, prompt)

    def final_answer(self, prompt: str, max_new_tokens: int = 128) -> str:
        """The constrained step given that the model answers without a tool."""
        with self.lock:
            return self._final_answer(self.encode_prompt(prompt) + self.encode_piece(THOUGHT_PREFIX), max_new_tokens)

    def _final_answer(self, ids: list[int], max_new_tokens: int) -> str:
        ids += self.encode_piece(" No") + self.encode_piece("\nAI:")
        answer = "".join(self.iter_free(ids, stop=FINAL_ANSWER_STOPS, max_new_tokens=max_new_tokens, ban_first=("\n",)))
        return f"{THOUGHT_PREFIX} No\nAI: {answer.strip()}"

    def _tool_call(self, ids: list[int], tools: list[ToolChoice], image_paths, prompt: str, chosen: int | None = None) -> str:
        if image_paths is None:
            image_paths = extract_image_paths(prompt)
        image_paths = list(dict.fromkeys(p for p in image_paths if p))
        ids += self.encode_piece(" Yes") + self.encode_piece("\nAction:")
        if chosen is None:
            cands = [self.encode_piece(f" {t.name}\n") for t in tools]
            first = self.score(ids, cands) if len(tools) > 1 else [0.0]
            chosen = self._pick_tool(prompt, tools, first) if len(tools) > 1 else 0
        toks = self.encode_piece(f" {tools[chosen].name}\n")
        tool = tools[chosen]
        ids += toks + self.encode_piece("Action Input:")
        n_args = max(1, tool.n_args)
        args: list[str] = []
        if tool.takes_image and image_paths:
            end = "\n" if n_args == 1 else ","
            which, toks = self.choose(ids, [f" {p}{end}" for p in image_paths])
            args.append(image_paths[which])
            ids += toks
        while len(args) < n_args:
            last = len(args) == n_args - 1
            # A text argument may hold commas only when it is the last one (split_args keeps them).
            stops = ("\n",) + (() if last else (",",)) + tuple(STOP_SEQUENCES)
            banned = ("\n",) if last else ("\n", ",")
            start = len(ids)
            value = "".join(
                self.iter_free(ids, stop=stops, max_new_tokens=self.max_text_arg_tokens, ban_first=banned)
            ).strip()
            copied = None if (tool.takes_image or args) else _leading_path(value, image_paths)
            if copied:
                # A tool that takes no image was handed a conversation image: its text argument is
                # elsewhere in the request. Try again without the path's first token.
                del ids[start:]
                banned += (self.decode(self.encode_piece(f" {copied}")[:1]).strip(),)
                value = "".join(
                    self.iter_free(ids, stop=stops, max_new_tokens=self.max_text_arg_tokens, ban_first=banned)
                ).strip()
                self.stats["path_args_retried"] += 1
            args.append(value)
            if not last:
                # Continue from the text as written (the stop may have cut inside a token).
                ids[start:] = self.encode_piece(f" {value},")
        return f"{THOUGHT_PREFIX} Yes\nAction: {tool.name}\nAction Input: {', '.join(args)}"
