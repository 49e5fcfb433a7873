"""Cutting texts before the tokenizer reads them: runs of characters that make no token take no room."""

from __future__ import annotations

import pytest

from rerankforge.reranker.clipping import CHARS_PER_TOKEN_BOUND, Blanks, clip


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def test_probe_finds_separators_and_dropped_characters(tokenizer):
    blanks = Blanks.of(tokenizer)
    assert Blanks.of(tokenizer) is blanks  # probed once per tokenizer
    assert set(" \t\n\r\u00a0\u2003\u2028\u2029\u3000") <= set(blanks.separators)
    assert set("\u200b\ufeff\u00ad\u180e\x00\x01\x7f") <= set(blanks.vanishing)
    assert not set("ab-_.,é") & set(blanks.separators + blanks.vanishing)


@pytest.mark.parametrize("text", [
    " " * 50_000 + "bone density and calcium " * 2000, "a" + "\u200b" * 30_000 + "b" + " x" * 10_000,
    "\u2028 \ufeff" * 20_000 + "vitamin d", "fractures " * 5000 + "\u3000" * 40_000, "\x00\n" * 25_000 + "z" * 100,
])
@pytest.mark.parametrize("left", [False, True], ids=["right", "left"])
def test_clipped_text_tokenises_like_the_whole_text_up_to_the_cut(text, left, tokenizer):
    limit = 128
    cut = clip(text, limit, Blanks.of(tokenizer), left=left)
    assert len(cut.text) <= limit * CHARS_PER_TOKEN_BOUND
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    got = tokenizer(cut.text, add_special_tokens=False)["input_ids"]
    if cut.whole:
        assert got == whole
    else:
        assert len(got) > limit  # enough tokens for the model's length, and they are the text's own
        assert (got[-limit:] == whole[-limit:]) if left else (got[:limit] == whole[:limit])


def test_whole_tells_a_collapsed_text_from_a_cut_one(tokenizer):
    blanks = Blanks.of(tokenizer)
    spaced = clip("a" + " " * 1_000_000 + "b", 10, blanks)
    assert spaced.whole and spaced.text == "a b"
    long = clip("word " * 1000, 10, blanks)
    assert not long.whole and len(long.text) == 10 * CHARS_PER_TOKEN_BOUND
    assert clip("short", 10, blanks).text == "short" and clip("short", 10, blanks).whole


def test_a_tokenizer_that_keeps_spaces_gets_a_plain_cut():
    from tokenizers import Tokenizer, models, pre_tokenizers

    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1, " ": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # every character its own piece
    blanks = Blanks.of(PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]"))
    assert blanks == Blanks()
    assert clip(" " * 1000, 10, blanks).text == " " * 10 * CHARS_PER_TOKEN_BOUND
