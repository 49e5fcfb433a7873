"""`rerankforge generate-queries`: the filters, a stand-in OpenAI-compatible generator on 127.0.0.1, resuming,
and the written folder feeding `mine` like any collection."""

import json


from rerankforge.cli.main import main as rerankforge
from rerankforge.data_prep.query_generation import GenerateQueriesArgs, clean_query, copied_share, query_filter

from conftest import running, tiny_chat_lm


def test_replies_are_cleaned_into_queries():
    assert clean_query('\n  Question: "What lowers fracture risk in the elderly?"\nExplanation: ...') == \
        "What lowers fracture risk in the elderly?"
    assert clean_query("query - does smoking cause cancer") == "does smoking cause cancer"
    assert clean_query("   \n\n") == ""


def test_filters_drop_empty_short_long_copied_and_duplicate_queries():
    args = GenerateQueriesArgs(data="x", output="y", generator="openai", model="m", min_words=3, max_words=8)
    passage = "Vitamin D supplementation reduced hip fractures in women over 70 in a randomised trial."
    seen: set[str] = set()
    assert query_filter("", passage, seen, args) == "empty"
    assert query_filter("vitamin D?", passage, seen, args) == "too_short"
    assert query_filter("does " * 9, passage, seen, args) == "too_long"
    assert copied_share("reduced hip fractures in women over 70", passage) == 1.0
    assert query_filter("Reduced hip fractures in women", passage, seen, args) == "copied"
    assert query_filter("Which supplement prevents broken hips in older women?", passage, seen, args) is None
    assert query_filter("which supplement prevents broken hips in older women", passage, seen, args) == "duplicate"


def test_generated_collection_from_an_openai_compatible_endpoint(tmp_path, scifact_slice, capsys):
    from fastapi import FastAPI

    calls = []
    llm = FastAPI()

    @llm.post("/v1/chat/completions")
    def chat(body: dict) -> dict:
        passage = body["messages"][-1]["content"].split("Passage: ", 1)[1].split("\n\nQuestion:")[0]
        calls.append(passage)
        words = passage.split()
        n = len(calls)
        reply = (" " if n % 5 == 0 else  # empty
                 " ".join(words[:8]) if n % 5 == 1 else  # copied from the passage
                 "Question: what does the study of item seven find?" if n % 5 == 2 else  # the same every time
                 f"Which finding is reported about topic {n} here?")
        return {"choices": [{"message": {"role": "assistant", "content": reply}}]}

    out = tmp_path / "synthetic"
    with running(llm) as url:
        args = ["generate-queries", "--data", str(scifact_slice), "--output", str(out), "--generator", "openai",
                "--model", "gen", "--base_url", f"{url}/v1", "--num_passages", "20"]
        assert rerankforge(args) == 0
        summary = json.loads((out / "generation.summary.json").read_text())
        assert summary["passages"] == 20 and summary["generated_now"] == 20 and len(calls) == 20
        assert summary["dropped"] == {"empty": 4, "too_short": 0, "too_long": 0, "copied": 4, "duplicate": 3}
        assert summary["kept"] == 9 and "9 of 20 generated queries kept" in capsys.readouterr().out
        assert rerankforge(args) == 0 and len(calls) == 20  # resumed from .generated.jsonl: nothing asked again

    from rerankforge.data_prep.sources import load_collection

    synthetic = load_collection(str(out), split="train")
    original = load_collection(str(scifact_slice), split="test")
    assert len(synthetic.judged_query_ids()) == 9 and synthetic.corpus == original.corpus
    for qid in synthetic.judged_query_ids():
        (doc_id,) = synthetic.qrels[qid]
        assert synthetic.queries[qid].startswith(("what does", "Which finding"))
        assert doc_id in synthetic.corpus
    mined = tmp_path / "mined.jsonl"
    assert rerankforge(["mine", "--data", str(out), "--split", "train", "--retriever", "bm25", "--num-negatives", "2",
                        "--output", str(mined), "--no_show_progress"]) == 0
    assert len(mined.read_text().splitlines()) == 9


def test_a_local_causal_lm_generates_and_an_interrupted_run_resumes(tmp_path, scifact_slice, tiny_bert):
    lm = tiny_chat_lm(tmp_path / "lm", tiny_bert)
    out = tmp_path / "synthetic"
    args = ["generate-queries", "--data", str(scifact_slice), "--output", str(out), "--generator", "causal-lm",
            "--model", str(lm), "--num_passages", "4", "--max_new_tokens", "8", "--min_words", "1",
            "--max_copied", "1.0"]
    assert rerankforge(args) == 0
    log = out / ".generated.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 5  # settings, then one reply per passage
    log.write_text("\n".join(lines[:3]) + "\n" + lines[3][:7])  # cut off while writing the third reply
    assert rerankforge(args) == 0
    summary = json.loads((out / "generation.summary.json").read_text())
    assert summary["generated_now"] == 2 and summary["passages"] == 4


def test_a_folder_holding_other_files_is_refused(tmp_path, scifact_slice, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert rerankforge(["generate-queries", "--data", str(scifact_slice), "--output", str(out), "--generator",
                        "openai", "--model", "m", "--base_url", "http://127.0.0.1:9/v1"]) == 2
    assert "holds files that are not a generated collection (notes.txt)" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"
