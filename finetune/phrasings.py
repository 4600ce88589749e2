"""Human phrasings, slot values, captions, image paths and typos for the offline generator.

The phrasings themselves live in ``finetune/data/*.txt`` as data; this module reads them and holds
the small value pools that fill their slots. Every pool that a request can be built from is split
into a ``train`` and a ``val`` part, so that ``val_generated.json`` asks in ways the training data
never does.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

__all__ = [
    "ToolPhrasings",
    "NoToolExample",
    "load_real_phrasings",
    "load_no_tool_examples",
    "wrap_request",
    "wrapper_pool",
    "starts_with_imperative",
    "add_typos",
    "random_caption",
    "random_image_path",
    "tool_output_path",
    "image_reference",
    "SLOT_VALUES",
    "slot_value",
    "random_description",
    "random_question",
    "random_style",
]


def _data_text(name: str) -> str:
    return resources.files("efe_langchain.finetune").joinpath("data", name).read_text(encoding="utf-8")


@dataclass
class ToolPhrasings:
    """How people ask for one tool: train and val phrasing pools, its confusion group, and for a
    conditioned generator the tool that makes its condition image."""

    tool: str
    group: str = ""
    cond: str = ""
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)


@lru_cache(maxsize=None)
def load_real_phrasings() -> dict[str, ToolPhrasings]:
    out: dict[str, ToolPhrasings] = {}
    current: ToolPhrasings | None = None
    pool = None
    for raw in _data_text("real_tools.txt").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            current = out.setdefault(m.group(1), ToolPhrasings(m.group(1)))
            pool = None
        elif current is None:
            raise ValueError(f"real_tools.txt: {line!r} comes before any [tool] header")
        elif line.startswith("group:"):
            current.group = line.split(":", 1)[1].strip()
        elif line.startswith("cond:"):
            current.cond = line.split(":", 1)[1].strip()
        elif line in ("train:", "val:"):
            pool = getattr(current, line[:-1])
        elif pool is None:
            raise ValueError(f"real_tools.txt: {line!r} in [{current.tool}] is under neither train: nor val:")
        else:
            pool.append(line)
    return out


@dataclass(frozen=True)
class NoToolExample:
    request: str
    answer: str
    kind: str  # chat or text


@lru_cache(maxsize=None)
def load_no_tool_examples() -> dict[str, tuple[NoToolExample, ...]]:
    """``{"train": (...), "val": (...)}`` from no_tool.txt."""
    pools: dict[str, list[NoToolExample]] = {"train": [], "val": []}
    kind = split = None
    for raw in _data_text("no_tool.txt").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+) (train|val)\]", line)
        if m:
            kind, split = m.groups()
            continue
        if split is None or "||" not in line:
            raise ValueError(f"no_tool.txt: malformed line {line!r}")
        req, ans = (p.strip() for p in line.split("||", 1))
        pools[split].append(NoToolExample(req, ans.replace("\\n", "\n"), kind))
    return {k: tuple(v) for k, v in pools.items()}


# Wrappers around a phrasing ("{r}" is the phrasing, "{R}" the same capitalised). Those that work with any
# sentence ("hey, i want the edges of {img}") and those that need a verb phrase after them ("can you ...?":
# only for phrasings that start with an imperative verb). Of the latter, those that make the user the subject
# ("I want to ...") do not fit a command that says "me" ("give me the depth of {img}"). Questions get only the
# light ones.
_WRAP_ANY = {
    "train": ["{r}", "{r}", "{r}", "{r}.", "{R}.", "{R}", "{r} please", "hey, {r}", "{r} thx", "{R}, thanks!",
              "Hi! {R}.", "ok now {r}", "next, {r}", "now {r}", "quick one: {r}", "{R}!", "{R} asap"],
    "val": ["{R} when you get a sec", "ok so {r}", "{R}, cheers", "right, {r}."],
}
_WRAP_VERB = {
    "train": [
        "please {r}", "can you {r}?", "could you {r}?", "could you please {r}", "I need you to {r}.",
        "is it possible to {r}?", "pls {r}", "would you {r}?", "so... {r}?", "I was wondering if you could {r}",
    ],
    "val": ["kindly {r}.", "any chance you could {r}?", "Do me a favour and {r}", "I'm hoping you can {r}"],
}
_WRAP_VERB_USER = {
    "train": ["I'd like to {r}", "I want to {r}", "help me {r}", "for my project I need to {r}",
              "my teacher asked me to {r}, can you do it?"],
    "val": ["would you mind if we {r}?", "Let's {r}.", "my boss wants me to {r}, help"],
}
_WRAP_QUESTION = {
    "train": ["{r}", "{r}?", "{R}?", "hey, {r}?", "{R}", "hmm, {r}?", "quick question: {r}?", "{r} ??"],
    "val": ["I'm curious, {r}?", "{R}? just wondering", "do you know {r}?"],
}
# Question wrappers that embed the question, so only a wh-question fits them.
_WRAP_WH_QUESTION = frozenset({"do you know {r}?"})
_WH_START = re.compile(r"^(what|what's|where|where's|how|which|who|when|why)\b", re.I)
_QUESTION_START = re.compile(
    r"^(what|what's|where|where's|how|which|who|is|are|does|do|did|can|could|would|when|why|tell|"
    r"i have|in |looking|regarding|about|quick|\{q\}|\{style\}|on which|left|name)\b",
    re.I,
)
# First words of the phrasings (real_tools.txt, synthetic_tools.txt, the chain phrasings) that are imperative
# verbs there. A list rather than a guess at parts of speech: "canny {img}", "depth map of {img}", "i want ...",
# "the cat should ...", "diorama vibe for {img}" start with words that are not on it. A verb left off only
# narrows that phrasing's wrappers to the ones that fit any sentence.
_IMPERATIVE_VERBS = frozenset("""
    add adjust age aim align alter analyse analyze anchor animate annotate answer apply assess audit balloon bathe
    blank blend blow blur boost borrow break brighten bring build bulge calculate capture cartoonize carve cast
    categorize celebrate censor change check chill chop circle classify clean clear clone color colorize combine
    come compare compose compress compute connect convert copy correct corrupt count cover craft create crispen
    curve cut cycle darken datamosh date deblock decode decompose decorate defocus delete denoise desaturate
    describe design detect diagnose dial digitize direct display distort divide downscale draft drain draw drop
    duplicate dye edit emboss encircle encode enhance enlarge equalize erase estimate exchange expand explain
    explode export extend extract fade fake fill find finish fit fix flag flatten flesh flip fold follow force frame
    furnish fuse generate get ghost give glitch go grade grain graph ground guess halo harmonize hide highlight
    identify illustrate imagine improve increase inpaint insert interpolate invent invert isolate italicise join
    keep kill label lay lean leave letterbox level lift lighten link list locate look loop lose lower make map mark
    mask match measure merge mirror mix mock modify mold morph move narrate neutralize normalize nudge obscure
    offset open optimize outline outpaint overlay pad paint pair pan partition paste patch pen perform pick pixelate
    place plot point posterize predict present press preview print produce pull punch push put quantize raise read
    rebuild recognise recognize recolor recommend recover recreate redo redraw reduce reflect regenerate register
    relight relocate remake remix remove render reorder repaint repair repeat replace report rescue resize restore
    restyle reveal reverse reword rework ring ripple rotate roughen run sample save scale scan scatter scramble
    scrub sculpt search segment select send separate set sharpen shear shift show shower shrink shuffle sign
    simulate skew slant slap slice smear smooth soften sort spell spin spiral split spot spotlight spread sprinkle
    square squeeze stage stamp stick straighten streak stretch strip substitute suggest summarize superimpose
    surround swap sweep swirl switch synthesize tag take tally tame teach tell throw tile tint trace track trade
    transcode transcribe transfer transform try turn tweak tween twist undo unpack update use vectorize view
    visualize warm warp wash watercolorize weigh whip widen wipe wrap write zoom
""".split())
# Words that make the one before them a noun: "mask of the cat", "emboss filter for {img}", "color key ...",
# "morph sequence of ...", "frame-by-frame export of ...".
_NOUN_FOLLOWERS = frozenset({"of", "for", "on", "pls", "please", "detection", "map", "effect", "version", "filter",
                             "overlay", "look", "style", "check", "estimation", "prediction", "image", "key",
                             "splash", "leak", "report", "sequence", "cloud", "blend", "export", "art", "factor",
                             "range", "blur"})


def _is_question(phrasing: str) -> bool:
    return bool(_QUESTION_START.match(phrasing)) or phrasing.rstrip().endswith("?")


def starts_with_imperative(phrasing: str) -> bool:
    """Whether the phrasing is a command that reads on after "can you" or "help me" ("blur {img}")."""
    words = phrasing.lower().split()
    if not words or words[0][-1] in ",:;":  # "scatter, bar or line: which is {img}"
        return False
    first = words[0]
    # "toon-ify {img}", "keystone-correct {img}", "hdr-ify": made-up verbs of a known verb or -ify.
    made_up_verb = first.endswith("ify") or first.rsplit("-", 1)[-1] in _IMPERATIVE_VERBS
    if first not in _IMPERATIVE_VERBS and not made_up_verb:
        return False
    if len(words) == 1:
        return True
    second = words[1]
    # "paint mixing: {x} and {y}" names a thing; "tweak {img}: {style}" still commands.
    return second.rstrip(",:;") not in _NOUN_FOLLOWERS and not (second.endswith(":") and "{" not in second)


def wrapper_pool(phrasing: str, split: str = "train") -> list[str]:
    """The wrappers that read naturally around this phrasing."""
    if _is_question(phrasing):
        pool = _WRAP_QUESTION[split]
        if not _WH_START.match(phrasing):  # "do you know what ...", never "do you know is ..."
            pool = [w for w in pool if w not in _WRAP_WH_QUESTION]
    elif starts_with_imperative(phrasing):
        user_can_do_it = not re.search(r"\bme\b", phrasing, re.I)  # not "I want to give me ..."
        pool = _WRAP_ANY[split] + _WRAP_VERB[split] + (_WRAP_VERB_USER[split] if user_can_do_it else [])
    else:
        pool = _WRAP_ANY[split]
    if re.search(r"\b(please|pls)\b", phrasing, re.I):
        # "please blur {img} please": one please is enough.
        pool = [w for w in pool if not re.search(r"\b(please|pls)\b", w)] or ["{r}"]
    return pool


def wrap_request(phrasing: str, rng: random.Random, split: str = "train") -> str:
    """The phrasing inside a human wrapper ("could you ...?", "pls ...", "for my project ..."), one that reads
    naturally around it: a command can follow "can you", a statement or a noun phrase cannot."""
    wrapper = rng.choice(wrapper_pool(phrasing, split))
    cap = phrasing[:1].upper() + phrasing[1:]
    text = wrapper.replace("{R}", cap).replace("{r}", phrasing)
    text = text.replace("??", "?").replace("?.", "?")
    return text.replace("?)?", "?)").replace(")?", ")") if text.endswith(")?") else text


_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "s": "adw", "d": "sfe", "e": "wrd", "r": "etf", "t": "ryg", "i": "uok", "o": "ipl",
    "n": "bm", "m": "n", "h": "gj", "l": "k", "c": "xv", "g": "fh", "p": "o", "u": "yi",
}


def add_typos(text: str, rng: random.Random, rate: float = 0.06) -> str:
    """Human noise: swapped, dropped, doubled or fat-fingered letters, lost capitals and punctuation.

    Slot placeholders (``{img}``...) are left alone, so paths and copied arguments stay exact.
    """
    words = re.split(r"(\s+)", text)
    for i, w in enumerate(words):
        if not w.strip() or "{" in w or len(w) < 4 or rng.random() > rate:
            continue
        j = rng.randrange(1, len(w) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        elif kind == 1:
            w = w[:j] + w[j + 1:]
        elif kind == 2:
            w = w[:j] + w[j] + w[j:]
        else:
            ch = w[j].lower()
            w = w[:j] + rng.choice(_KEYBOARD_NEIGHBOURS.get(ch, ch)) + w[j + 1:]
        words[i] = w
    out = "".join(words)
    r = rng.random()
    if r < 0.25:
        out = out.lower()
    elif r < 0.35 and out[:1].islower():
        out = out[:1].upper() + out[1:]
    if rng.random() < 0.2:
        out = out.rstrip(".!?")
    return out


# ---------------------------------------------------------------- captions and scene descriptions
_ADJ = ["", "", "small", "large", "old", "red", "white", "black", "brown", "yellow", "blue", "young",
        "green", "wooden", "shiny", "fluffy", "tall", "tiny", "colorful", "rusty"]
_NOUNS = ["dog", "cat", "man", "woman", "child", "horse", "car", "bus", "bicycle", "motorcycle", "boat",
          "bird", "cow", "sheep", "elephant", "giraffe", "train", "truck", "girl", "boy", "couple",
          "chef", "skateboarder", "surfer", "teddy bear", "laptop", "pizza", "vase of flowers",
          "clock tower", "kite", "airplane", "zebra", "bear", "group of people", "baseball player",
          "tennis player", "kitchen", "living room", "bedroom", "street", "fire hydrant", "bench"]
_ACTIONS = ["sitting", "standing", "running", "lying", "parked", "walking", "playing", "waiting",
            "flying", "resting", "eating", "jumping", "riding a wave", "holding an umbrella",
            "looking out of a window", "crossing the road", "covered in snow", "next to a tree"]
_PLACES = ["on a beach", "in a park", "on a city street", "in a kitchen", "near a lake", "in a field",
           "on a wooden table", "in front of a building", "on a snowy hill", "in a living room",
           "at the train station", "under a bridge", "in the desert", "by the sea", "in a forest",
           "on a grassy hill", "in a parking lot", "at night", "in the rain", "at sunset",
           "in a small town", "inside a cafe", "on a farm", "in a garden", "on a mountain road"]
_NUMBERS = ["a", "a", "a", "two", "three", "several", "some", "an"]


def _article_noun(rng: random.Random) -> tuple[str, str]:
    noun = rng.choice(_NOUNS)
    adj = rng.choice(_ADJ)
    count = rng.choice(_NUMBERS)
    if count in ("a", "an"):
        phrase = f"{adj} {noun}".strip()
        art = "an" if phrase[0] in "aeiou" else "a"
        return f"{art} {phrase}", noun
    plural = noun if noun.endswith("s") else (noun[:-1] + "ies" if noun.endswith("y") and noun[-2] not in "aeiou" else noun + "s")
    plural = {"man": "men", "woman": "women", "child": "children", "sheep": "sheep", "group of people": "groups of people",
              "couple": "couples", "bus": "buses", "vase of flowers": "vases of flowers"}.get(noun, plural)
    return f"{count} {(adj + ' ') if adj else ''}{plural}", noun


def random_caption(rng: random.Random) -> tuple[str, str]:
    """A COCO-like caption and its main noun (which requests then talk about)."""
    subject, noun = _article_noun(rng)
    parts = [subject]
    if rng.random() < 0.8:
        parts.append(rng.choice(_ACTIONS))
    parts.append(rng.choice(_PLACES))
    caption = " ".join(parts)
    if rng.random() < 0.5:
        caption = caption[:1].upper() + caption[1:]
    return caption + ("." if rng.random() < 0.6 else ""), noun


_DESC_SUBJ = ["a castle", "a red sports car", "a cute corgi", "an astronaut", "a robot", "a cozy cabin",
              "a dragon", "a bowl of ramen", "a lighthouse", "a futuristic city", "a tiger", "a sailboat",
              "an old library", "a steam train", "a hot air balloon", "a wizard", "a panda", "a waterfall",
              "a vintage bicycle", "a cup of coffee", "a sunflower field", "a knight", "a fox", "a spaceship",
              "a mountain village", "a jellyfish", "a marble statue", "a treehouse", "a snowman", "a penguin",
              "a modern house", "a young woman in a red dress", "an old man with a beard", "a ballet dancer"]
_DESC_MOD = ["", "", "", "at sunset", "in the snow", "on the moon", "under the sea", "in a rainy street",
             "in watercolor style", "in the style of a pixar movie", "with neon lights", "in a misty forest",
             "on a sunny beach", "at night with stars", "in autumn", "made of glass", "in a desert",
             "surrounded by flowers", "from above", "on a white background", "in van gogh style"]


def random_description(rng: random.Random) -> str:
    subject, modifier = rng.choice(_DESC_SUBJ), rng.choice(_DESC_MOD)
    # A tool argument stays short (12 words at most): "an old man with a beard" takes no long modifier.
    if len(f"{subject} {modifier}".split()) > 12:
        modifier = ""
    return " ".join(p for p in (subject, modifier) if p)


_QUESTIONS = ["what color is the {n}", "how many {n}s are there", "is it daytime or night",
              "what is the {n} doing", "what is in the background", "is there a person",
              "what is the weather like", "where was this taken", "what is the {n} next to",
              "is the {n} big or small", "what is on the table", "are there any animals",
              "what is the man holding", "what time of day is it", "what color is the sky",
              "is it indoors or outdoors", "how old is the {n}", "what kind of {n} is it",
              "is the {n} moving", "what is the main object", "is there text anywhere",
              "what season is it", "is there any {n} in it", "what is the {n} made of", "what is behind the {n}",
              "which way is the {n} facing", "what is the {n} wearing", "what food is there", "is it raining",
              "what does the sign say", "how many people are there", "what animal is that", "is the {n} wet",
              "what kind of place is this", "what is the mood of the scene", "are the lights on",
              "what is the {n} looking at", "is anyone smiling"]


def random_question(rng: random.Random, noun: str) -> str:
    # People also ask about things the caption does not mention ("is there a laptop?"): those
    # still need the image, so the noun is not always the caption's.
    if rng.random() < 0.35:
        noun = rng.choice(_NOUNS)
    return rng.choice(_QUESTIONS).replace("{n}", noun)


_STYLES = ["make it look like a watercolor painting", "turn it into a winter scene",
           "make it look like a painting", "make it like a robot", "make it look like a cartoon",
           "turn the day into night", "make it look like van gogh painted it", "add snow",
           "make it look older", "make the sky look stormy", "make it a sunny day",
           "give it a cyberpunk look", "make it look like an oil painting", "turn it into a pencil drawing",
           "make the grass purple", "make it look like it is on fire", "make it look like lego",
           "turn it into a anime style picture", "add fireworks in the sky", "make everything golden",
           "make it autumn", "make it look like a mosaic", "make it underwater",
           # Whole-image colour and tone changes: Instruct is the tool for them when no dedicated one is
           # listed (the colour and tone families are never listed beside it).
           "make it black and white", "make it brighter", "make it darker", "make the colors more vivid",
           "give it warmer colors", "make it look cold and blue"]


def random_style(rng: random.Random) -> str:
    return rng.choice(_STYLES)


SLOT_VALUES = {
    "obj": ["dog", "cat", "car", "person", "tree", "bicycle", "chair", "cup", "bottle", "umbrella", "bench",
            "laptop", "bird", "horse", "boat", "clock", "lamp", "vase", "sign", "man", "woman", "kite",
            "bus", "sofa", "table", "plant", "backpack", "phone", "fence", "truck", "pizza", "cake",
            "red car", "white dog", "street lamp", "trash can", "traffic light", "old chair"],
    "color": ["red", "blue", "green", "yellow", "white", "black", "pink", "purple", "orange", "gold", "silver", "teal"],
    "amount": ["brighter", "darker", "a bit brighter", "much darker", "20% brighter", "slightly darker"],
    "angle": ["90 degrees", "180 degrees", "45 degrees", "270 degrees", "30 degrees", "-90 degrees"],
    "size": ["512x512", "800x600", "1024x768", "256x256", "1920x1080", "640x480"],
    "material": ["wooden", "gold", "silver", "black", "white", "vintage", "floral", "marble"],
    "text": ["'Copyright 2024'", "Happy Birthday", "'Sold out'", "My Trip", "@janedoe", "Best Day Ever",
             "Draft", "'Hello World'", "Summer 2023", "DO NOT COPY"],
    "style": ["van gogh", "ukiyo-e", "pop art", "cubism", "impressionism", "studio ghibli", "art nouveau",
              "pixel art", "monet", "comic book"],
    "season": ["winter", "autumn", "spring", "summer"],
    "weather": ["rain", "snow", "fog", "a thunderstorm", "mist", "hail"],
    "sky": ["sunset", "starry", "stormy", "clear blue", "cloudy", "pink"],
    "emotion": ["happy", "sad", "surprised", "angry", "calm", "scared"],
    "agechange": ["older", "younger", "20 years older", "like a child", "10 years younger", "elderly"],
    "position": ["to the left", "to the right", "to the top", "to the bottom", "to the center"],
    "light": ["warm sunset light", "soft studio light", "light from the left", "candle light",
              "cold blue light", "dramatic side light"],
    "desc": ["a bakery with a croissant", "a fox in a forest", "a coffee shop called Bean", "a rocket",
             "a green leaf", "a mountain and a sun", "a cat chef cooking", "a running shoe", "waves"],
    # No commas: the comma separates a tool's arguments.
    "data": ["3 5 8 2", "apples 10 pears 4 plums 7", "10 20 30", "jan 5 feb 7 mar 9", "red 40% blue 60%"],
    "link": ["https://example.com", "www.my-shop.com", "https://github.com/efe", "my wifi password 1234"],
    "region": ["top half", "bottom half", "left side", "right side", "top left corner", "bottom right corner",
               "center", "upper third", "lower third"],
    "number": ["2", "3", "4", "5", "6", "8"],
    "format": ["png", "jpeg", "webp", "gif", "bmp", "tiff"],
    "percent": ["50%", "25%", "75%", "10%", "30%", "80%", "60%"],
}
SLOT_VALUES["direction"] = SLOT_VALUES["position"]
SLOT_VALUES["degrees"] = SLOT_VALUES["angle"]


def slot_value(kind: str, rng: random.Random) -> str:
    if kind not in SLOT_VALUES:
        raise KeyError(f"no value pool for slot {kind!r}")
    return rng.choice(SLOT_VALUES[kind])


# ---------------------------------------------------------------- image paths
_WORDS = ["cat", "beach", "holiday", "photo", "img", "scan", "pic", "party", "dog", "house", "street",
          "garden", "test", "sample", "frame", "shot", "mountain", "car", "portrait", "snap"]


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def random_image_path(rng: random.Random, split: str = "train") -> str:
    """An upload's file name, in many shapes, so the model learns to copy rather than to produce one."""
    r = rng.random()
    if split == "val" and r < 0.3:
        return rng.choice([f"Downloads/{rng.choice(_WORDS)}({rng.randint(1, 9)}).png",
                           f"shared/{_alnum(rng, 6)}/{rng.choice(_WORDS)}.jpg",
                           f"image/{_hex(rng, 8)}.PNG", f"export_{rng.randint(100, 999)}.webp"])
    if r < 0.45:
        return f"image/{_hex(rng, 8)}.png"
    if r < 0.55:
        return f"uploads/IMG_{rng.randint(1000, 9999)}.jpg"
    if r < 0.63:
        return f"photos/{rng.choice(_WORDS)}_{rng.randint(1, 99)}.jpeg"
    if r < 0.70:
        return f"{rng.choice(_WORDS)}{rng.randint(1, 20)}.png"
    if r < 0.76:
        return f"data/{rng.choice(_WORDS)}-{_alnum(rng, 4)}.webp"
    if r < 0.82:
        return f"pics/{rng.randint(2015, 2025)}/{rng.choice(_WORDS)}_{rng.randint(1, 400)}.jpg"
    if r < 0.88:
        return f"tmp/{_alnum(rng, 12)}.bmp"
    if r < 0.94:
        return f"image/{_alnum(rng, 10)}.jpg"
    return f"workspace/{rng.choice(_WORDS)}_{_hex(rng, 6)}.png"


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


def _balanced(cut: str) -> str:
    """A cut name part without its parentheses when the cut split a pair ("holiday(8)" -> "holiday("
    would be a name no path pattern reads)."""
    return cut if cut.count("(") == cut.count(")") else re.sub(r"[()]", "", cut)


def tool_output_path(rng: random.Random, func: str, source: str) -> str:
    """The name a tool gives its output, mostly Visual ChatGPT's ``new_func_prev_orig.png`` shape."""
    r = rng.random()
    stem = _stem(source)
    if r < 0.7:
        parts = stem.split("_")
        prev, orig = (_balanced(parts[0][:8]), _balanced(parts[-1][:8]))
        return f"image/{_hex(rng, 4)}_{func}_{prev}_{orig}.png"
    if r < 0.85:
        return f"image/{_hex(rng, 8)}.png"
    if r < 0.93:
        return f"outputs/{stem}_{func}.png"
    return f"image/{func}_{_hex(rng, 6)}.jpg"


# The val words stay out of training so that val_generated measures whether a new way of pointing at
# the last image is understood; many training ways make that likelier (session 8's candidate answered
# "restyle that one as monet" and "can i post that one at work" with no tool).
_REFS = {
    "train": ["this image", "the image", "this picture", "the picture", "the photo", "this photo", "it",
              "my photo", "the last image", "this pic", "the image above", "the one i sent",
              "the current image", "that picture", "the pic",
              "the newest image", "the most recent image", "the new picture", "my picture", "my pic",
              "the snapshot", "this file", "the file", "the attached image", "the image i gave you",
              "the picture i shared", "the one above", "that image", "that photo", "this snap",
              "the current picture", "the last pic", "the last one",
              "the one we have now", "the last thing i sent", "the most recent pic"],
    "val": ["the shot", "that one", "my upload", "the latest picture", "the photograph"],
}


def image_reference(rng: random.Random, path: str, split: str = "train", explicit: float = 0.45) -> str:
    """How a request points at the image: its file name (copied exactly) or words like "this photo"."""
    if rng.random() < explicit:
        return rng.choice(["{p}", "{p}", "image {p}", "the image {p}", "{p}", "file {p}"]).replace("{p}", path)
    return rng.choice(_REFS[split])
