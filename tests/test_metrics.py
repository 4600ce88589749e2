"""GPT4Tools metrics on hand-computed cases (expected values worked out by hand in the comments)."""

import math

import pytest

from efe_langchain.evaluation.metrics import (
    aggregate,
    args_step_score,
    bleu1,
    extract_steps,
    position_accuracy,
    score_record,
)

YES = "Thought: Do I need to use a tool? Yes"
NO = "Thought: Do I need to use a tool? No"
IMG = "image/k3j9x0ab.png"
INSTRUCTION = (
    "...Previous conversation:\n\nHuman: Provide an image named image/k3j9x0ab.png. Description: two dogs "
    "on a beach. Understand the image using tools.\nAI: Received.\n\nNew input: ...\n"
)


def step(tool, args, obs="[output]"):
    return f"{YES}\nAction: {tool}\nAction Input: {args}\nObservation:\n{obs}\n"


def final(answer="done"):
    return f"{NO}\nAI: {answer}\n"


approx = pytest.approx


# ---- BLEU-1 ------------------------------------------------------------------------------------
def test_bleu1_exact_match_is_one_up_to_smoothing():
    assert bleu1("a red car", "a red car") == approx(1.0, abs=1e-8)


def test_bleu1_brevity_penalty():
    # 2 of 2 predicted words right, prediction 2 words vs reference 3: exp(1 - 3/2)
    assert bleu1("a red car", "red car") == approx(math.exp(-0.5), rel=1e-6)


def test_bleu1_clipping_and_case():
    # "the" appears once in the reference: the second "the" is not counted -> 1/2
    assert bleu1("the cat", "the the") == approx(0.5, rel=1e-6)
    assert bleu1("Cat", "cat") == approx(0.0, abs=1e-9)


def test_bleu1_half_is_just_under_half_like_pycocoevalcap():
    # (1 + 1e-15) / (2 + 1e-9) < 0.5: a one-word-of-two match fails SR's ">= 0.5" as in GPT4Tools
    assert bleu1("the cat", "the dog") < 0.5
    assert bleu1("the cat", "the dog") == approx(0.5, rel=1e-6)


def test_bleu1_empty_prediction_scores_zero():
    assert bleu1("a cat", "") == approx(0.0, abs=1e-9)


# ---- building blocks ---------------------------------------------------------------------------
def test_extract_steps_reads_lines():
    s = extract_steps(step("Get Photo Description", IMG) + final())
    assert s.thoughts == ["Yes", "No"]
    assert s.actions == ["Get Photo Description"]
    assert s.args == [IMG]
    assert s.has_ai


def test_position_accuracy_over_longer_list():
    assert position_accuracy(["a", "b"], ["a"]) == 0.5
    assert position_accuracy(["a"], ["a", "x", "y"]) == approx(1 / 3)
    assert position_accuracy(["a", "b"], ["b", "a"]) == 0.0


def test_args_step_score_comma_count_mismatch_is_zero():
    assert args_step_score(f"{IMG}, a cat", IMG) == 0.0
    assert args_step_score(IMG, f"{IMG}, a cat") == 0.0


def test_args_step_score_png_part_needs_any_png_only():
    assert args_step_score(IMG, "image/invented.png") == 1.0
    assert args_step_score(IMG, "the image") == 0.0


# ---- tool records --------------------------------------------------------------------------------
def test_perfect_single_step():
    ref = step("Edge Detection On Image", IMG, "image/0f3c1d2e.png") + final("image/0f3c1d2e.png")
    pred = f"{YES}\nAction: Edge Detection On Image\nAction Input: {IMG}"
    s = score_record(ref, pred, instruction=INSTRUCTION)
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR, s.IoU, s.strict) == (1, 1, 1, 1, 1, 1)


def test_prediction_with_final_no_thought_is_still_perfect():
    ref = step("Get Photo Description", IMG) + final()
    pred = step("Get Photo Description", IMG) + final("two dogs")
    s = score_record(ref, pred, instruction=INSTRUCTION)
    assert s.SR == 1 and s.SR_t == 1


def test_invented_file_name_and_wrong_text_pass_sr_but_not_strict():
    # png part 1.0 (any .png), text BLEU ~0 -> step 0.5 -> SR passes; strict fails twice over
    ref = step("Segment the given object", f"{IMG}, the dog on the left") + final()
    pred = f"{YES}\nAction: Segment the given object\nAction Input: image/made_up.png, blue bicycle"
    s = score_record(ref, pred, instruction=INSTRUCTION)
    assert s.SR_args == approx(0.5, abs=1e-9)
    assert s.SR == 1.0
    assert s.strict == 0.0


def test_strict_needs_every_text_argument():
    ref = step("Segment the given object", f"{IMG}, the dog on the left") + final()
    good = f"{YES}\nAction: Segment the given object\nAction Input: {IMG}, the dog on the left"
    wrong_text = f"{YES}\nAction: Segment the given object\nAction Input: {IMG}, a cat"
    assert score_record(ref, good, instruction=INSTRUCTION).strict == 1.0
    s = score_record(ref, wrong_text, instruction=INSTRUCTION)
    assert s.SR == 1.0 and s.strict == 0.0


def test_strict_accepts_a_real_image_for_a_stand_in_reference():
    ref = step("Answer Question About The Image", "example.png, what color is the dog?") + final()
    real = f"{YES}\nAction: Answer Question About The Image\nAction Input: {IMG}, what color is the dog?"
    invented = f"{YES}\nAction: Answer Question About The Image\nAction Input: image/zz.png, what color is the dog?"
    assert score_record(ref, real, instruction=INSTRUCTION).strict == 1.0
    assert score_record(ref, invented, instruction=INSTRUCTION).strict == 0.0
    assert score_record(ref, invented, instruction=INSTRUCTION).SR == 1.0


def test_strict_keeps_commas_inside_last_text_argument_when_arg_count_known():
    ref = step("Answer Question About The Image", f"{IMG}, is it red, or blue?") + final()
    pred = f"{YES}\nAction: Answer Question About The Image\nAction Input: {IMG}, is it red, or blue?"
    s = score_record(ref, pred, instruction=INSTRUCTION, n_args={"Answer Question About The Image": 2})
    assert s.SR == 1 and s.strict == 1


def test_comma_count_mismatch():
    ref = step("Remove Something From The Photo", f"{IMG}, the dog") + final()
    pred = f"{YES}\nAction: Remove Something From The Photo\nAction Input: {IMG}"
    s = score_record(ref, pred, instruction=INSTRUCTION)
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR) == (1, 1, 0, 0)
    # IoU: thought 1 + action 1 + args 0 over 3 reference slots
    assert s.IoU == approx(2 / 3)
    assert s.strict == 0


def test_extra_predicted_steps():
    ref = step("Get Photo Description", IMG) + final()
    pred = step("Get Photo Description", IMG) + step("Edge Detection On Image", IMG) + final()
    s = score_record(ref, pred, instruction=INSTRUCTION)
    # thoughts ref [Yes] vs pred [Yes, Yes] (the trailing No is dropped): 1/2, same for actions, args
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR) == (0.5, 0.5, 0.5, 0.0)
    # GPT4Tools' IoU only counts reference slots, so extra steps cost nothing there
    assert s.IoU == 1.0
    assert s.strict == 0


def test_multi_step_chain_all_right():
    ref = (
        step("Generate Image From User Input Text", "a red car in the snow", "image/aa11bb22.png")
        + step("Edge Detection On Image", "image/aa11bb22.png", "image/cc33dd44.png")
        + final("image/cc33dd44.png")
    )
    pred = (
        step("Generate Image From User Input Text", "a red car in the snow", "image/aa11bb22.png")
        + step("Edge Detection On Image", "image/aa11bb22.png", "image/cc33dd44.png")
        + final("here: image/cc33dd44.png")
    )
    s = score_record(ref, pred, instruction=INSTRUCTION)
    assert (s.SR_t, s.SR_act, s.SR, s.IoU, s.strict) == (1, 1, 1, approx(1), 1)
    assert s.SR_args == approx(1.0, abs=1e-8)


def test_multi_step_chain_second_step_wrong():
    ref = (
        step("Generate Image From User Input Text", "a red car", "image/aa11bb22.png")
        + step("Edge Detection On Image", "image/aa11bb22.png", "image/cc33dd44.png")
        + final()
    )
    # second step uses the wrong tool, and its argument is an invented file
    pred = (
        step("Generate Image From User Input Text", "red car", "image/aa11bb22.png")
        + step("Line Detection On Image", "image/other.png")
        + final()
    )
    s = score_record(ref, pred, instruction=INSTRUCTION)
    assert s.SR_t == 1.0
    assert s.SR_act == 0.5
    # step 1 BLEU: 2/2 words right, BP exp(1 - 3/2); step 2: png part -> 1.0; mean over 2 steps
    assert s.SR_args == approx((math.exp(-0.5) + 1.0) / 2, rel=1e-6)
    assert s.SR == 0
    # IoU: thoughts 2 + actions 1 + args (0.6065 + 1) over 6 reference slots
    assert s.IoU == approx((2 + 1 + math.exp(-0.5) + 1) / 6, rel=1e-6)
    assert s.strict == 0


def test_missing_prediction_scores_zero_on_tool_record():
    ref = step("Get Photo Description", IMG) + final()
    s = score_record(ref, "", instruction=INSTRUCTION)
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR, s.IoU, s.strict) == (0, 0, 0, 0, 0, 0)


def test_answer_instead_of_tool_scores_zero_on_tool_record():
    ref = step("Get Photo Description", IMG) + final()
    s = score_record(ref, final("two dogs"), instruction=INSTRUCTION)
    # pred thoughts [No] with 0 actions: the trailing No is dropped -> [] vs [Yes]: 0
    assert (s.SR_t, s.SR_act, s.SR) == (0, 0, 0)


# ---- no-tool records ---------------------------------------------------------------------------
NO_TOOL_REF = final("Paris is the capital of France.")


def test_no_tool_right():
    s = score_record(NO_TOOL_REF, f"{NO}\nAI: It is Paris.")
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR, s.IoU, s.strict) == (1, 1, 1, 1, 1, 1)


def test_no_tool_without_ai_prefix_is_zero():
    s = score_record(NO_TOOL_REF, f"{NO}\nIt is Paris.")
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR, s.strict) == (0, 0, 0, 0, 0)
    # the published IoU looks at thoughts only
    assert s.IoU == 1.0


def test_no_tool_but_tool_used_is_zero():
    s = score_record(NO_TOOL_REF, step("Get Photo Description", IMG))
    assert (s.SR_t, s.SR_act, s.SR_args, s.SR, s.IoU) == (0, 0, 0, 0, 0)


def test_no_tool_spec_and_script_variants_differ_on_repeated_thoughts():
    pred = f"{NO}\nAI: Paris.\n{NO}\nAI: Paris again."
    assert score_record(NO_TOOL_REF, pred).SR == 1.0
    script = score_record(NO_TOOL_REF, pred, variant="script")
    assert script.SR == 0.0 and script.SR_t == 0.5
    with pytest.raises(ValueError, match="variant"):
        score_record(NO_TOOL_REF, pred, variant="bogus")


def test_aggregate_in_percent():
    ref = step("Get Photo Description", IMG) + final()
    good = score_record(ref, f"{YES}\nAction: Get Photo Description\nAction Input: {IMG}", instruction=INSTRUCTION)
    bad = score_record(ref, "", instruction=INSTRUCTION)
    agg = aggregate([good, bad, score_record(NO_TOOL_REF, final())])
    assert agg["n"] == 3
    assert agg["SR"] == approx(200 / 3)
    assert aggregate([])["SR"] == 0.0
