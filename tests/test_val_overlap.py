"""The filter that keeps new training phrasings away from the val phrasings."""

from finetune.synthetic_tools import load_synthetic_families
from finetune.val_overlap import _trigrams, keep_far, own_words, too_close

VAL = ["give {img} a shallow depth of field look", "soften everything behind the subject in {img}"]


def test_a_shared_content_trigram_or_two_shared_words_is_too_close():
    assert "3-gram" in too_close("i'd like a shallow depth of field on {img}", VAL)
    assert "words" in too_close("the field depth of {img} should be tiny", VAL)
    # Half of a candidate's own content words in one val phrasing is also too close.
    assert too_close("soften {img} please", VAL)


def test_common_words_placeholders_and_the_tools_own_words_do_not_count():
    assert too_close("could you make {img} look like a film", VAL) is None
    # A placeholder ends a run of words: no 3-gram spans it.
    assert _trigrams("warm velvet {img} glow", frozenset()) == set()
    assert _trigrams("warm velvet glow on {img}", frozenset()) == {("warm", "velvet", "glow"), ("velvet", "glow", "on")}
    assert too_close("blur the background of {img}", ["blur the background of {img} a lot"]) is not None
    assert too_close("blur the background of {img}", ["blur the background of {img} a lot"],
                     own=["blur", "background"]) is None
    # ...but the very same words are always too close, own or not.
    assert too_close("Blur the background of {img}!", ["blur the background of {img}"], own=["blur", "background"])


def test_keep_far_splits_and_says_why():
    kept, dropped = keep_far(["make {img} dreamy", "shallow depth of field for {img}"], VAL)
    assert kept == ["make {img} dreamy"]
    assert dropped[0][0] == "shallow depth of field for {img}" and "3-gram" in dropped[0][1]


def test_a_familys_own_words_come_from_what_the_prompt_shows():
    fam = next(f for f in load_synthetic_families() if f.family == "blur_bg")
    own = own_words(fam)
    assert {"blur", "background", "subject", "sharp"} <= own
    assert "shallow" not in own
