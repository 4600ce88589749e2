"""Constrained ReAct decoding on tiny random models: the schema holds whatever the weights say."""

from __future__ import annotations

import pytest
import torch

from conftest import build_tiny_lm
from efe_langchain.decoding import ReActDecoder, ToolChoice
from efe_langchain.prompts import load_tool_specs, tool_spec
from efe_langchain.react import (
    FinalAnswer,
    ToolCall,
    parse,
    render_history,
    render_image_turn,
    render_prompt,
    render_scratchpad,
    split_args,
)

IMAGES = ["image/ab12cd34.png", "image/5f0e9a1b.png"]


def _conversation(specs, new_input="Make the picture look like a pencil drawing", scratchpad=""):
    history = "\n".join(
        [render_image_turn(IMAGES[0], "a dog on the grass"), render_image_turn(IMAGES[1], "a red car on a street")]
    )
    return render_prompt(specs, history, new_input, scratchpad)


@pytest.fixture(scope="module")
def tiny_models(smollm2_tokenizer):
    """Three differently seeded random models: the constraints must hold for each."""
    return [build_tiny_lm(smollm2_tokenizer, seed=s) for s in range(3)]


def _tool_sets():
    specs = load_tool_specs()
    two_arg = [s for s in specs if s.n_args == 2]
    no_image = [s for s in specs if not s.takes_image]
    assert two_arg and no_image, "the GPT4Tools list has 2-argument tools and tools without an image"
    return [specs[:6], two_arg, no_image + two_arg[:1], list(specs)]


def test_tool_choice_from_spec():
    spec = tool_spec("Edge Detection On Image")
    choice = ToolChoice.from_tool(spec)
    assert choice == ToolChoice("Edge Detection On Image", n_args=spec.n_args, takes_image=True)
    assert ToolChoice.from_tool(choice) is choice


def test_tool_call_always_valid_from_random_models(tiny_models, smollm2_tokenizer):
    """A random model must still name a listed tool, an existing image and the right arg count."""
    seen_tools = set()
    for model in tiny_models:
        dec = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=8)
        for specs in _tool_sets():
            prompt = _conversation(specs)
            text = dec.tool_call(prompt, [ToolChoice.from_tool(s) for s in specs])
            assert "Observation" not in text
            result = parse(text, [s.name for s in specs])
            assert isinstance(result, ToolCall), text
            spec = next(s for s in specs if s.name == result.tool)
            seen_tools.add(spec.name)
            args = split_args(result.tool_input, spec.n_args)
            assert len(args) == spec.n_args, text
            assert all(a for a in args), f"empty argument in {text!r}"
            if spec.takes_image:
                assert args[0] in IMAGES, text
            if spec.n_args > 1:
                # Exactly n_args parts: the free text before the last one holds no comma.
                assert result.tool_input.count(",") >= spec.n_args - 1
    assert len(seen_tools) >= 2, "choices should depend on the model, not be a fixed default"


def test_a_text_argument_may_start_with_a_space_token_but_never_stay_blank(tiny_lm):
    # Llama-style tokenizers write " 270" as " ", "2", "7", "0": the first token may be spaces alone,
    # the next one may not (nor a newline or, before a last argument, a comma).
    model, tok = tiny_lm
    dec = ReActDecoder(model, tok)
    size = model.config.vocab_size
    first = dec._ban_mask(("\n", ","), size, allow_spaces=True)
    later = dec._ban_mask(("\n", ","), size)
    space, digit = tok.encode(" 2", add_special_tokens=False)
    newline, comma = tok.encode("\n", add_special_tokens=False)[0], tok.encode(",", add_special_tokens=False)[0]
    assert tok.decode([space]) == " " and tok.decode([digit]) == "2"
    assert not first[space] and later[space]
    assert not first[digit] and not later[digit]
    assert first[newline] and later[newline] and first[comma] and later[comma]
    assert all(first[e] for e in dec.eos_ids if e < size)


def test_explicit_image_candidates_restrict_the_choice(tiny_lm):
    model, tok = tiny_lm
    dec = ReActDecoder(model, tok)
    spec = tool_spec("Edge Detection On Image")
    only = ["image/ffff0000.png"]
    text = dec.tool_call(_conversation([spec]), [ToolChoice.from_tool(spec)], image_paths=only)
    assert text.endswith("Action Input: image/ffff0000.png")


def test_step_is_a_tool_call_or_a_final_answer(tiny_models, smollm2_tokenizer):
    for model in tiny_models:
        dec = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=8)
        specs = load_tool_specs()[:8]
        tools = [ToolChoice.from_tool(s) for s in specs]
        text = dec.step(_conversation(specs), tools, constrained=True, max_new_tokens=12)
        assert "Observation" not in text
        assert text.startswith("Thought: Do I need to use a tool? ")
        result = parse(text, [s.name for s in specs])
        assert isinstance(result, (ToolCall, FinalAnswer)), text
        if isinstance(result, ToolCall):
            # The step decides Yes/No and the tool in one pass; the same call as deciding apart.
            assert text == dec.tool_call(_conversation(specs), tools)
        else:
            assert text == dec.final_answer(_conversation(specs), max_new_tokens=12)


def test_final_answer_is_well_formed(tiny_lm):
    model, tok = tiny_lm
    dec = ReActDecoder(model, tok)
    text = dec.final_answer(_conversation(load_tool_specs()[:3]), max_new_tokens=10)
    assert text.startswith("Thought: Do I need to use a tool? No\nAI: ")
    assert "\n" not in text.split("\nAI: ", 1)[1]
    result = parse(text)
    assert isinstance(result, FinalAnswer) and result.text


def test_no_tools_means_a_final_answer(tiny_lm):
    model, tok = tiny_lm
    text = ReActDecoder(model, tok).step(_conversation([]), [], constrained=True, max_new_tokens=5)
    assert text.startswith("Thought: Do I need to use a tool? No\nAI:")


def test_tree_scoring_equals_scoring_each_candidate_alone(tiny_lm):
    """One packed forward with a tree mask gives each candidate's own log-likelihood."""
    model, tok = tiny_lm
    dec = ReActDecoder(model, tok)
    prefix = dec.encode_prompt(_conversation(load_tool_specs()[:5])) + dec.encode_piece("Thought: Do I need to use a tool? Yes\nAction:")
    # Shared beginnings (" Generate Image ...") and a candidate that is a prefix of another.
    cands = [dec.encode_piece(f" {s.name}\n") for s in load_tool_specs()[:5]] + [dec.encode_piece(" x")]
    cands.append(dec.encode_piece(" Get Photo"))
    dec.advance(prefix[:-7])  # a warm cache that lacks the prefix's last tokens
    packed = dec.score(prefix, cands)
    with torch.inference_mode():
        alone = []
        for c in cands:
            seq = torch.tensor([prefix + c])
            logp = torch.log_softmax(model(input_ids=seq).logits[0].float(), dim=-1)
            alone.append(sum(float(logp[len(prefix) - 1 + j, t]) for j, t in enumerate(c)))
    assert packed == pytest.approx(alone, abs=1e-3)
    # The cache holds the prefix only: the candidates' keys were dropped.
    assert dec._cache.get_seq_length() == len(prefix) == dec.cached_tokens


@pytest.mark.parametrize("orders", [1, 3])
def test_prefix_cache_gives_the_same_steps_as_no_cache(tiny_lm, orders):
    """An agent's calls (a step, the next step after an observation, a new turn) with the cache
    reused across them decode exactly what fresh, uncached calls decode (with several tool orders,
    each order keeps its own cache)."""
    model, tok = tiny_lm
    specs = [s for s in load_tool_specs() if s.n_args == 2][:2] + list(load_tool_specs()[:4])
    tools = [ToolChoice.from_tool(s) for s in specs]
    scratch = render_scratchpad([("Edge Detection On Image", IMAGES[0], "image/9a8b7c6d.png")])
    turn2_history = "\n".join([render_image_turn(IMAGES[0], "a dog"), render_history([("Human", "hi"), ("AI", "hello")])])
    prompts = [
        _conversation(specs),
        _conversation(specs, scratchpad=scratch),
        render_prompt(specs, turn2_history, "what is in image/ab12cd34.png?", ""),
        _conversation(specs),
    ]
    cached = ReActDecoder(model, tok, max_text_arg_tokens=6, tool_orders=orders)
    fresh_results = []
    cached_results = []
    for p in prompts:
        fresh = ReActDecoder(model, tok, use_cache=False, max_text_arg_tokens=6, tool_orders=orders)
        fresh_results.append((fresh.tool_call(p, tools), fresh.step(p, tools, max_new_tokens=8), fresh.step(p, tools, constrained=False, max_new_tokens=8)))
        cached_results.append((cached.tool_call(p, tools), cached.step(p, tools, max_new_tokens=8), cached.step(p, tools, constrained=False, max_new_tokens=8)))
    assert cached_results == fresh_results
    # Most of every prompt after the first came from the cache.
    assert cached.stats["tokens_reused"] > 3 * cached.stats["tokens_computed"]


def test_free_decoding_stops_inside_generation(tiny_lm):
    """A stop string ends decoding where it appears; it is never emitted."""
    model, tok = tiny_lm
    dec = ReActDecoder(model, tok)
    prompt = "Human: Tell me about the picture.\nAI:"
    full = dec.complete(prompt, max_new_tokens=24)
    assert len(full) > 6
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    assert stop.strip(), f"pick a visible stop from {full!r}"
    before = dec.stats["forwards"]
    cut = dec.complete(prompt, stop=[stop], max_new_tokens=24)
    used = dec.stats["forwards"] - before
    assert cut == full[: full.find(stop)]
    assert used < 24, "decoding must end at the stop string, not at max_new_tokens"
    streamed = list(dec.stream(prompt, stop=[stop], max_new_tokens=24))
    assert "".join(streamed) == cut
    assert all(stop not in s for s in streamed)


def test_prompt_lookup_drafts_keep_the_greedy_output(tiny_models, smollm2_tokenizer):
    """Checking copied drafts in one pass changes how many passes run, never what is decoded."""
    prompts = [
        _conversation(load_tool_specs()[:3]) + "Thought: Do I need to use a tool? No\nAI:",
        "Human: repeat after me: the red ball is next to the dog. the red ball is next to the\nAI:",
    ]
    fewer = False
    for model in tiny_models:
        plain = ReActDecoder(model, smollm2_tokenizer, prompt_lookup=0)
        drafted = ReActDecoder(model, smollm2_tokenizer, prompt_lookup=8)
        for p in prompts:
            a0, b0 = plain.stats["forwards"], drafted.stats["forwards"]
            assert drafted.complete(p, max_new_tokens=20) == plain.complete(p, max_new_tokens=20)
            fewer |= drafted.stats["forwards"] - b0 < plain.stats["forwards"] - a0
        specs = [s for s in load_tool_specs() if s.n_args == 2][:3]
        tools = [ToolChoice.from_tool(s) for s in specs]
        assert drafted.tool_call(_conversation(specs), tools) == plain.tool_call(_conversation(specs), tools)
    assert fewer, "drafts were accepted at least once"


def test_bad_input_is_a_clear_error(tiny_lm):
    model, tok = tiny_lm
    dec = ReActDecoder(model, tok)
    with pytest.raises(ValueError, match="non-empty line"):
        ToolChoice("")
    with pytest.raises(ValueError, match="n_args"):
        ToolChoice("Edge Detection On Image", n_args=0)
    with pytest.raises(ValueError, match="context"):
        dec.step("word " * 5000, [ToolChoice("Edge Detection On Image")])
    with pytest.raises(ValueError, match="at least one listed tool"):
        dec.tool_call("Human: hi\n", [])
    # The decoder still works after refusing bad input.
    assert dec.final_answer("Human: hi\nAI: hello\n", max_new_tokens=3).startswith("Thought: Do I need to use a tool? No\nAI:")


def test_tool_orders_are_distinct_and_start_with_the_given_order():
    from efe_langchain.decoding import tool_orders

    names = ["A", "B", "C", "D"]
    assert tool_orders(names, 1) == [names]
    assert tool_orders(names, 3) == [names, ["D", "C", "B", "A"], ["B", "C", "D", "A"]]
    assert tool_orders(["A", "B"], 3) == [["A", "B"], ["B", "A"]]  # only two orders exist
    assert tool_orders(["A"], 3) == [["A"]]


def test_tool_choice_over_several_orders_sums_each_orders_normalised_scores(tiny_models, smollm2_tokenizer):
    """The ensembled choice is the argmax of the per-order log-softmax sums, recomputed here from
    plain single-order calls on reordered prompts; one order is the plain choice."""
    from efe_langchain.decoding import tool_orders
    from efe_langchain.react import reorder_prompt_tools

    specs = list(load_tool_specs())[:5]
    choices = [ToolChoice.from_tool(s) for s in specs]
    names = [c.name for c in choices]
    moved = 0
    for model in tiny_models:
        plain = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4)
        ensembled = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4, tool_orders=3)
        for new_input in ("outline the dog", "make the car blue", "what is in the picture?"):
            prompt = _conversation(specs, new_input)
            total = torch.zeros(len(names), dtype=torch.float64)
            per_order = []
            for order in tool_orders(names, 3):
                text = reorder_prompt_tools(prompt, order)
                ids = plain.encode_prompt(text) + plain.encode_piece("Thought: Do I need to use a tool? Yes\nAction:")
                scores = plain.score(ids, [plain.encode_piece(f" {n}\n") for n in names])
                per_order.append(torch.log_softmax(torch.tensor(scores, dtype=torch.float64), 0))
                total += per_order[-1]
            moved += any(not torch.allclose(per_order[0], p, atol=1e-4) for p in per_order[1:])
            want = names[int(torch.argmax(total))]
            got = parse(ensembled.tool_call(prompt, choices), names)
            assert isinstance(got, ToolCall) and got.tool == want
    assert moved >= 1, "the order of the tool list should change the scores, or this test proves nothing"


def test_order_gate_skips_the_other_orders_only_for_a_sure_first_order(tiny_models, smollm2_tokenizer):
    """``tool_scores_by_order`` gives each order's normalised scores; a gate at the first order's top
    probability keeps its pick and skips the other prefills, a gate above it sums them all."""
    import math

    specs = list(load_tool_specs())[:5]
    choices = [ToolChoice.from_tool(s) for s in specs]
    names = [c.name for c in choices]
    for model in tiny_models:
        probe = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4, tool_orders=3)
        for new_input in ("outline the dog", "make the car blue"):
            prompt = _conversation(specs, new_input)
            orders = probe.tool_scores_by_order(prompt, choices)
            assert len(orders) == 3 and all(len(o) == len(names) for o in orders)
            assert all(abs(sum(math.exp(x) for x in o) - 1) < 1e-6 for o in orders)
            top = math.exp(max(orders[0]))
            first = names[max(range(len(names)), key=orders[0].__getitem__)]
            summed = [sum(x) for x in zip(*orders)]
            all_orders = names[max(range(len(names)), key=summed.__getitem__)]

            sure = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4, tool_orders=3, order_confidence=top * 0.999)
            before = sure.stats["forwards"]
            assert parse(sure.tool_call(prompt, choices), names).tool == first
            assert sure.stats["orders_skipped"] == 1
            unsure = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4, tool_orders=3,
                                  order_confidence=min(1.0, top * 1.001 + 1e-9))
            assert parse(unsure.tool_call(prompt, choices), names).tool == all_orders
            assert unsure.stats["orders_skipped"] == 0
            assert unsure.stats["forwards"] > sure.stats["forwards"] - before
    with pytest.raises(ValueError, match="order_confidence"):
        ReActDecoder(tiny_models[0], smollm2_tokenizer, order_confidence=1.5)


def _order_sensitive_lm(tokenizer, first: str, second: str, seed: int):
    """A tiny random model whose " Yes" is 1.5 less likely when tool ``first`` is listed above tool
    ``second`` and 1.5 more likely otherwise, as a small model's choice can hang on the list order."""
    model = build_tiny_lm(tokenizer, seed=seed)
    yes = tokenizer.encode(" Yes", add_special_tokens=False)[0]
    lines = [tokenizer.encode(f"> {name}:", add_special_tokens=False) for name in (first, second)]

    def where(ids: list[int], seq: list[int]) -> int:
        return next((i for i in range(len(ids) - len(seq) + 1) if ids[i:i + len(seq)] == seq), -1)

    def push(module, args, kwargs, out):
        ids = kwargs["input_ids"][0].tolist()
        a, b = where(ids, lines[0]), where(ids, lines[1])
        if a >= 0 and b >= 0:  # a call that carries the tool list (later calls reuse its cache)
            out.logits[0, :, yes] += -1.5 if a < b else 1.5
        return out

    model.register_forward_hook(push, with_kwargs=True)
    return model


def test_whether_a_tool_is_needed_is_decided_over_the_same_tool_orders(smollm2_tokenizer):
    """A step says Yes when log P(Yes) - log P(No) summed over the tool orders is positive; a gate
    below the first order's own certainty keeps the first order's answer without the other prefills."""
    import math

    from efe_langchain.decoding import tool_orders
    from efe_langchain.react import reorder_prompt_tools

    specs = list(load_tool_specs())[:5]
    choices = [ToolChoice.from_tool(s) for s in specs]
    names = [c.name for c in choices]
    flipped = 0
    for seed in range(2):
        model = _order_sensitive_lm(smollm2_tokenizer, names[0], names[1], seed)
        plain = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4)
        yes, no = plain.encode_piece(" Yes"), plain.encode_piece(" No")
        for new_input in ("outline the dog", "thanks!", "is the cat asleep?"):
            prompt = _conversation(specs, new_input)
            margins = []
            for order in tool_orders(names, 3):
                plain.reset()
                ids = plain.encode_prompt(reorder_prompt_tools(prompt, order)) + plain.encode_piece("Thought: Do I need to use a tool?")
                s = plain.score(ids, [yes, no])
                margins.append(s[0] - s[1])
            flipped += (margins[0] > 0) != (sum(margins) > 0)
            probe = ReActDecoder(model, smollm2_tokenizer, tool_orders=3).yes_no_margins_by_order(prompt, choices)
            assert probe == pytest.approx(margins, abs=1e-4)
            one = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4).step(prompt, choices, max_new_tokens=4)
            assert one.startswith("Thought: Do I need to use a tool? " + ("Yes" if margins[0] > 0 else "No"))
            three = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4, tool_orders=3).step(prompt, choices, max_new_tokens=4)
            assert three.startswith("Thought: Do I need to use a tool? " + ("Yes" if sum(margins) > 0 else "No")), (margins, three)
            sure = 1 / (1 + math.exp(-abs(margins[0])))
            gated = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=4, tool_orders=3, order_confidence=sure * 0.999)
            out = gated.step(prompt, choices, max_new_tokens=4)
            assert out.startswith("Thought: Do I need to use a tool? " + ("Yes" if margins[0] > 0 else "No"))
            assert gated.stats["yes_no_orders_skipped"] == 1
    assert flipped >= 3, "the list order should change some decisions, or this test proves nothing"


def test_tool_orders_leave_custom_prompts_alone(tiny_lm):
    model, tok = tiny_lm
    choices = [ToolChoice("Alpha Tool"), ToolChoice("Beta Tool")]
    prompt = "Pick a tool for image/ab12cd34.png.\n"  # not GPT4Tools' layout: scored as given
    a = ReActDecoder(model, tok, max_text_arg_tokens=4).tool_call(prompt, choices)
    b = ReActDecoder(model, tok, max_text_arg_tokens=4, tool_orders=3).tool_call(prompt, choices)
    assert a == b
    with pytest.raises(ValueError, match="tool_orders"):
        ReActDecoder(model, tok, tool_orders=0)


def _copying_lm(tokenizer, text: str, seed: int = 7):
    """A tiny random model pushed to write ``text`` after "Action Input:" (a forward hook adds a
    large logit to the token that continues it), as a model that copies an image path would."""
    model = build_tiny_lm(tokenizer, seed=seed)
    pieces = tokenizer.encode(f" {text}\n", add_special_tokens=False)
    after = {tokenizer.encode("Action Input:", add_special_tokens=False)[-1]: pieces[0]}
    after.update(zip(pieces, pieces[1:]))
    assert len(after) == len(pieces), "the path's tokens must be distinct for this hook"

    def push(module, args, kwargs, out):
        ids = kwargs["input_ids"][0]
        rows = out.logits.shape[1]
        for j, tok in enumerate(ids[-rows:].tolist()):
            if tok in after:
                out.logits[0, j, after[tok]] += 100.0
        return out

    model.register_forward_hook(push, with_kwargs=True)
    return model


def test_a_tool_without_an_image_never_gets_a_conversation_image_as_its_text(smollm2_tokenizer):
    model = _copying_lm(smollm2_tokenizer, IMAGES[0])
    text_only = next(s for s in load_tool_specs() if not s.takes_image and s.n_args == 1)
    dec = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=12)
    out = dec.tool_call(_conversation([text_only], "draw a rocket"), [ToolChoice.from_tool(text_only)])
    value = parse(out).tool_input
    assert value and not value.startswith(IMAGES[0]), out
    assert dec.stats["path_args_retried"] == 1
    # Control: decoded freely, the same model does write the path there.
    free = ReActDecoder(model, smollm2_tokenizer, max_text_arg_tokens=12)
    assert free.complete(_conversation([text_only], "draw a rocket") + f" Yes\nAction: {text_only.name}\nAction Input:",
                         stop=["\n"]).strip() == IMAGES[0]
