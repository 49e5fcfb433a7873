"""Token-budget batching: pairs tokenised once, the query kept whole, batches within the budget, scores
in input order and equal to scoring each pair with the tokenizer's own `only_second` truncation."""

import random

import numpy as np
import pytest

from rerankforge.reranker.packing import PairEncoder, pack
from rerankforge.reranker.scoring import Reranker


def _texts(seed: int, count: int) -> list[tuple[str, str]]:
    """Short queries with documents from a few words to far past the model's length, shuffled."""
    rng = random.Random(seed)
    words = "cell protein gene expression cancer mutation immune response tissue receptor signal".split()
    return [(" ".join(rng.choices(words, k=rng.randint(2, 12))), " ".join(rng.choices(words, k=rng.randint(1, 200))))
            for _ in range(count)]


def _reference_scores(reranker: Reranker, pairs) -> np.ndarray:
    """Each pair on its own through the tokenizer's own pair truncation: no padding, no packing."""
    import torch

    values = []
    with torch.inference_mode():
        for query, doc in pairs:
            batch = reranker.tokenizer(query, doc, truncation="only_second", max_length=reranker.max_length,
                                       return_tensors="pt")
            values.append(reranker.model(**batch).logits.view(-1).item())
    return np.array(values, dtype=np.float32)


@pytest.fixture(scope="module")
def tiny_xlmr_reranker(tiny_xlmr):
    """The tiny XLM-R with a fresh single-logit head: a tokenizer without token_type_ids."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.reranker.folder import new_head_expected

    torch.manual_seed(2)
    with new_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(tiny_xlmr, num_labels=1).eval()
    return model, AutoTokenizer.from_pretrained(tiny_xlmr)


@pytest.mark.parametrize("family", ["bert", "xlmr"])
def test_packed_scores_equal_one_pair_at_a_time_in_input_order(family, tiny_reranker, tiny_xlmr_reranker):
    if family == "bert":
        reranker = Reranker.load(tiny_reranker, max_length=64, precision="fp32", max_batch_tokens=300)
    else:
        reranker = Reranker(*tiny_xlmr_reranker, max_length=64, precision="fp32", max_batch_tokens=300)
    pairs = _texts(0, 40)
    scores = reranker.score(pairs)
    np.testing.assert_allclose(scores, _reference_scores(reranker, pairs), atol=1e-5)
    # the same pairs in another order score the same, each in its own place
    order = list(range(len(pairs)))
    random.Random(1).shuffle(order)
    np.testing.assert_allclose(reranker.score([pairs[i] for i in order]), scores[order], atol=1e-5)


def test_a_long_query_is_kept_whole_when_its_document_is_cut(tiny_reranker):
    """A query about as long as its document: the tokenizer's default (`longest_first`) would cut both."""
    reranker = Reranker.load(tiny_reranker, max_length=128, precision="fp32")
    query = " ".join(["protein"] * 80)
    pair = (query, " ".join(["tissue"] * 80))
    [encoded] = reranker.encoder.encode([pair])
    assert reranker.tokenizer.decode(encoded.input_ids).count("protein") == 80
    assert len(encoded.input_ids) == 128
    np.testing.assert_allclose(reranker.score([pair]), _reference_scores(reranker, [pair]), atol=1e-5)


def test_a_query_is_cut_only_when_it_would_leave_no_room_for_the_document(tiny_reranker):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker)
    short, long = PairEncoder(tokenizer, 64).encode([(" ".join(["protein"] * 300), "the tissue"),
                                                      (" ".join(["protein"] * 300), " ".join(["tissue"] * 300))])
    assert len(short.input_ids) == len(long.input_ids) == 64  # 3 special tokens
    assert tokenizer.decode(short.input_ids).count("protein") == 64 - 3 - 2  # the whole document kept
    assert tokenizer.decode(long.input_ids).count("tissue") == 30  # the document keeps half the room


def test_batches_stay_within_the_token_budget(tiny_reranker):
    reranker = Reranker.load(tiny_reranker, max_length=64, precision="fp32", max_batch_tokens=200, batch_size=5)
    shapes = []
    handle = reranker.model.register_forward_pre_hook(
        lambda module, args, kwargs: shapes.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        reranker.score(_texts(3, 30))
    finally:
        handle.remove()
    assert sum(rows for rows, _ in shapes) == 30
    assert all(rows * width <= 200 and rows <= 5 for rows, width in shapes)
    assert len(shapes) < 30  # short pairs share batches


def test_pack_covers_every_pair_once_within_the_budget():
    lengths = [random.Random(i).randint(3, 512) for i in range(200)]
    batches = list(pack(lengths, max_batch_tokens=1024))
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1024
    # a pair longer than the budget still runs, alone
    assert list(pack([10, 2000, 10], max_batch_tokens=100)) == [[0, 2], [1]]
    assert list(pack([4] * 5, max_batch_tokens=100, max_rows=2)) == [[0, 1], [2, 3], [4]]


def test_pairs_joined_in_one_call_or_one_by_one_encode_alike_in_input_order(tiny_reranker):
    """Most pairs go through the Rust tokenizer in one call; those whose query would crowd out the document
    are joined one by one. Mixed in one call, each comes back in its place, as it would alone."""
    from transformers import AutoTokenizer

    encoder = PairEncoder(AutoTokenizer.from_pretrained(tiny_reranker), 64)
    long_query = " ".join(["protein"] * 70)
    pairs = _texts(3, 12)
    pairs[4:4] = [(long_query, "the tissue"), (long_query, " ".join(["cell"] * 90))]
    together = encoder.encode(pairs)
    alone = [encoder.encode([pair])[0] for pair in pairs]
    assert together == alone


@pytest.mark.parametrize("side", ["right", "left"])
def test_collate_pads_each_row_on_the_tokenizers_side(side, tiny_reranker):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_reranker, padding_side=side)
    encoder = PairEncoder(tokenizer, 64)
    encoded = encoder.encode(_texts(5, 6))
    batch = encoder.collate(encoded)
    width = max(len(e.input_ids) for e in encoded)
    assert batch["input_ids"].shape == (6, width)
    for row, e in enumerate(encoded):
        pad = width - len(e.input_ids)
        ids, mask = batch["input_ids"][row].tolist(), batch["attention_mask"][row].tolist()
        real = slice(pad, None) if side == "left" else slice(0, len(e.input_ids))
        assert ids[real] == e.input_ids and batch["token_type_ids"][row].tolist()[real] == e.token_type_ids
        assert sum(mask) == len(e.input_ids) and all(mask[real])
        assert ids.count(tokenizer.pad_token_id) >= pad



PADDING = [" " * 20000, "\n" * 20000, "\u200b" * 20000, " \u200b\t\ufeff\u00a0" * 5000, "\u2028\u00ad" * 9000]


@pytest.mark.parametrize("padding", PADDING, ids=["spaces", "newlines", "zero-width", "mixed", "separators"])
def test_padded_texts_score_as_sentence_transformers_scores_them(padding, tiny_reranker):
    """What is scored is the first max_length tokens of the text, however it is padded (once, 20,000 spaces
    before a document made it score as an empty one)."""
    import torch
    from sentence_transformers import CrossEncoder

    text = "honey is an antibacterial dressing for burns and wounds"
    pairs = [("what heals wounds", padding + text), ("what heals wounds", text + padding),
             ("what heals wounds", padding + text + padding), (padding + "what heals wounds", text),
             ("what heals wounds", padding.join(text.split()))]
    reranker = Reranker.load(tiny_reranker, max_length=64)
    expected = CrossEncoder(tiny_reranker, device="cpu", max_length=64).predict(
        pairs, activation_fn=torch.nn.Identity())
    assert reranker.score(pairs) == pytest.approx(np.asarray(expected), abs=2e-6)
    plain, empty = reranker.score([("what heals wounds", text), ("what heals wounds", "")])
    assert reranker.score(pairs[:1])[0] == pytest.approx(plain, abs=2e-6)
    assert abs(plain - empty) > 2e-5  # so the comparisons above tell the content from an empty document
