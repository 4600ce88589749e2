"""GPT4Tools' tool-use metrics (SR_t, SR_act, SR_args, SR, step IoU) and a strict success rate.

The GPT4Tools rules are implemented as ``/work/shared/gpt4tools/EVAL_FORMAT.md`` states them, with
the arithmetic of the published scorer (``eval/evaluate_result.py``): position-aligned accuracies
over the longer list, BLEU-1 as pycocoevalcap computes it (its tiny smoothing constants included,
because a BLEU of exactly 0.5 decides SR and the published numbers were made with them), and the
IoU over the concatenated thought/action/argument flags.

The published scorer is lenient in two ways the strict rate closes: an image argument passes when
the prediction contains any ``.png`` (an invented file name passes), and on a two-argument call the
image part alone carries the step over SR's 0.5 threshold. ``strict`` needs the exact image path
(or, when the reference uses a stand-in name that is not in the conversation, a path that is) and
a BLEU-1 of at least 0.5 on every text argument.

Everything here is a pure function of strings: no model, no I/O.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

from efe_langchain.react import IMAGE_PATH_RE, extract_image_paths

__all__ = [
    "METRICS",
    "RecordScore",
    "bleu1",
    "extract_steps",
    "position_accuracy",
    "args_step_score",
    "score_record",
    "aggregate",
    "uses_tool",
]

METRICS = ("SR_t", "SR_act", "SR_args", "SR", "IoU", "strict")

_THOUGHT_RE = re.compile(r"Thought: Do I need to use a tool\? (.*)")
_ACTION_RE = re.compile(r"Action: (.*)")
_ARGS_RE = re.compile(r"Action Input: (.*)")
_AI_RE = re.compile(r"AI: (.*)")

# pycocoevalcap's smoothing: (correct + TINY) / (guessed + SMALL), and the same in the length ratio.
_TINY = 1e-15
_SMALL = 1e-9


def bleu1(reference: str, prediction: str) -> float:
    """Sentence BLEU-1 of ``prediction`` against one ``reference`` as pycocoevalcap's ``Bleu(n=1)``.

    Whitespace tokens, case-sensitive, clipped unigram precision times the brevity penalty
    ``exp(1 - r/c)`` when the prediction is shorter. An exact match scores 1 - 1e-9, one of two
    words right scores just under 0.5: that is what GPT4Tools' numbers were computed with.
    """
    ref = reference.split()
    hyp = prediction.split()
    ref_counts = Counter(ref)
    correct = sum(min(n, ref_counts[w]) for w, n in Counter(hyp).items())
    score = (correct + _TINY) / (len(hyp) + _SMALL)
    ratio = (len(hyp) + _TINY) / (len(ref) + _SMALL)
    if ratio < 1:
        score *= math.exp(1 - 1 / ratio)
    return score


@dataclass(frozen=True)
class Steps:
    thoughts: list[str]
    actions: list[str]
    args: list[str]
    has_ai: bool


def extract_steps(text: str) -> Steps:
    """Thoughts, actions and argument strings, line by line, stripped (GPT4Tools' regexes)."""
    return Steps(
        thoughts=[t.strip() for t in _THOUGHT_RE.findall(text)],
        actions=[a.strip() for a in _ACTION_RE.findall(text)],
        args=[a.strip() for a in _ARGS_RE.findall(text)],
        has_ai=bool(_AI_RE.search(text)),
    )


def uses_tool(reference_output: str) -> bool:
    """A reference calls a tool when it has both an ``Action:`` and an ``Action Input:`` line."""
    return "Action:" in reference_output and "Action Input:" in reference_output


def _flags(reference: Sequence[str], prediction: Sequence[str]) -> tuple[list[float], list[float]]:
    """Per position over the longer list: 1 where aligned items are equal; and the reference mask."""
    n = max(len(reference), len(prediction))
    hit = [0.0] * n
    mask = [0.0] * n
    for i in range(min(len(reference), len(prediction))):
        hit[i] = 1.0 if reference[i] == prediction[i] else 0.0
    for i in range(len(reference)):
        mask[i] = 1.0
    return hit, mask


def _mean(xs: Sequence[float]) -> float:
    # Both lists empty only happens for a malformed reference; an empty comparison is vacuous.
    return sum(xs) / len(xs) if xs else 1.0


def position_accuracy(reference: Sequence[str], prediction: Sequence[str]) -> float:
    """acc(a, b): aligned equal items over the length of the longer list."""
    return _mean(_flags(reference, prediction)[0])


def args_step_score(reference: str, prediction: str) -> float:
    """One aligned step's argument score under GPT4Tools' rule (split on every comma)."""
    ref_parts = reference.split(",")
    pred_parts = prediction.split(",")
    if len(ref_parts) != len(pred_parts):
        return 0.0
    parts = []
    for r, p in zip(ref_parts, pred_parts):
        if ".png" in r:
            if ".png" not in p:
                return 0.0
            parts.append(1.0)
        else:
            parts.append(bleu1(r, p))
    return sum(parts) / len(parts)


def _args_flags(reference: Sequence[str], prediction: Sequence[str]) -> tuple[list[float], list[float]]:
    n = max(len(reference), len(prediction))
    score = [0.0] * n
    mask = [0.0] * n
    for i in range(min(len(reference), len(prediction))):
        score[i] = args_step_score(reference[i], prediction[i])
    for i in range(len(reference)):
        mask[i] = 1.0
    return score, mask


def _iou(flags: Iterable[float], masks: Iterable[float]) -> float:
    flags, masks = list(flags), list(masks)
    inter = sum(f * m for f, m in zip(flags, masks))
    union = max(sum(max(f, m) for f, m in zip(flags, masks)), 1.0)
    return inter / union


@dataclass(frozen=True)
class RecordScore:
    """One record's scores, each in [0, 1]."""

    SR_t: float
    SR_act: float
    SR_args: float
    SR: float
    IoU: float
    strict: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _split_strict(args: str, n_args: int | None) -> list[str]:
    # With the tool's argument count known, commas inside the last (free text) argument belong to it.
    if n_args and n_args >= 1:
        return [p.strip() for p in args.split(",", n_args - 1)]
    return [p.strip() for p in args.split(",")]


def _is_image_arg(part: str) -> bool:
    return bool(IMAGE_PATH_RE.fullmatch(part.strip()))


def _strict_step(ref_args: str, pred_args: str, n_args: int | None, known_images: Sequence[str]) -> bool:
    ref_parts = _split_strict(ref_args, n_args)
    pred_parts = _split_strict(pred_args, n_args)
    if len(ref_parts) != len(pred_parts):
        return False
    for r, p in zip(ref_parts, pred_parts):
        if _is_image_arg(r):
            if r in known_images:
                if p != r:
                    return False
            elif known_images:
                # A stand-in such as example.png: any image the conversation really has is right.
                if p not in known_images:
                    return False
            elif not _is_image_arg(p):
                return False
        elif bleu1(r, p) < 0.5:
            return False
    return True


def _reference_observations(reference_output: str) -> list[str]:
    return extract_image_paths("\n".join(re.findall(r"Observation:(.*?)(?=\nThought:|\Z)", reference_output, re.S)))


def score_record(
    reference_output: str,
    prediction: str,
    *,
    instruction: str = "",
    n_args: Mapping[str, int] | None = None,
    variant: str = "spec",
) -> RecordScore:
    """Score one prediction (the continuation only) against its reference output.

    ``instruction`` (the record's prompt) tells the strict rate which image paths exist;
    ``n_args`` (tool name -> argument count) lets it keep commas inside a last text argument.
    ``variant="script"`` reproduces the published script where it differs from EVAL_FORMAT.md on
    no-tool records (it averages thoughts over every predicted thought instead of checking only the
    first one).
    """
    if variant not in ("spec", "script"):
        raise ValueError(f"variant must be 'spec' or 'script', not {variant!r}")
    ref = extract_steps(reference_output)
    pred = extract_steps(prediction.strip())

    if not uses_tool(reference_output):
        t_hit, t_mask = _flags(ref.thoughts, pred.thoughts)
        iou = _iou(t_hit, t_mask)
        ok = bool(pred.thoughts) and pred.thoughts[0] == "No" and pred.has_ai
        if variant == "script":
            sr_t = _mean(t_hit) if ok else 0.0
            ok = ok and sr_t >= 1.0
        else:
            sr_t = 1.0 if ok else 0.0
        v = 1.0 if ok else 0.0
        return RecordScore(SR_t=sr_t, SR_act=v, SR_args=v, SR=v, IoU=iou, strict=v)

    ref_thoughts = ref.thoughts[: len(ref.actions)]
    pred_thoughts = list(pred.thoughts)
    if len(pred_thoughts) == len(pred.actions) + 1 and pred_thoughts[-1] == "No":
        pred_thoughts.pop()
    t_hit, t_mask = _flags(ref_thoughts, pred_thoughts)
    a_hit, a_mask = _flags(ref.actions, pred.actions)
    g_score, g_mask = _args_flags(ref.args, pred.args)
    sr_t, sr_act, sr_args = _mean(t_hit), _mean(a_hit), _mean(g_score)
    sr = 1.0 if (sr_t >= 1.0 and sr_act >= 1.0 and sr_args >= 0.5) else 0.0
    iou = _iou(t_hit + a_hit + g_score, t_mask + a_mask + g_mask)

    strict = 0.0
    if sr_t >= 1.0 and sr_act >= 1.0 and len(ref.args) == len(pred.args) == len(ref.actions):
        known = extract_image_paths(instruction) + _reference_observations(reference_output)
        counts = n_args or {}
        if all(
            _strict_step(r, p, counts.get(name), known)
            for name, r, p in zip(ref.actions, ref.args, pred.args)
        ):
            strict = 1.0
    return RecordScore(SR_t=sr_t, SR_act=sr_act, SR_args=sr_args, SR=sr, IoU=iou, strict=strict)


def aggregate(scores: Sequence[RecordScore]) -> dict[str, float]:
    """Mean of each metric over records, in percent (0 records -> every metric 0 and n=0)."""
    out: dict[str, float] = {"n": len(scores)}
    for m in METRICS:
        out[m] = 100.0 * sum(getattr(s, m) for s in scores) / len(scores) if scores else 0.0
    return out
