"""`rerankforge score-teacher`: a cross-encoder, a served ranking, a local causal LM and an OpenAI-compatible
judge (a stand-in server on 127.0.0.1) score a mined file; the cache resumes; training distils from it."""

import json
import shutil

import pytest

from rerankforge.cli.main import main as rerankforge

from conftest import running, tiny_chat_lm


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _same(rows, expected):
    """Equal rows, scores to float noise: a pair batched with other pairs pads differently."""
    assert len(rows) == len(expected)
    for row, other in zip(rows, expected):
        assert [row["positive_score"], *row["negative_scores"]] == pytest.approx(
            [other["positive_score"], *other["negative_scores"]], abs=1e-4)
        drop = ("positive_score", "negative_scores")
        assert {k: v for k, v in row.items() if k not in drop} == {k: v for k, v in other.items() if k not in drop}


def test_cross_encoder_teacher_scores_every_document_and_resumes_from_its_cache(tmp_path, mined_slice,
                                                                                 tiny_reranker, capsys):
    from rerankforge.reranker.scoring import Reranker

    out = tmp_path / "scored.jsonl"
    args = ["score-teacher", "--input", str(mined_slice), "--output", str(out), "--teacher", tiny_reranker]
    assert rerankforge(args) == 0
    printed, logged = capsys.readouterr()
    rows, mined = _rows(out), _rows(mined_slice)
    assert len(rows) == len(mined) and "0 already scored" in logged and "ranks the labelled positive" in printed
    reranker = Reranker.load(tiny_reranker)
    row, source = rows[0], mined[0]
    expected = reranker.score([(row["query"], d) for d in [row["positive"], *row["negatives"]]])
    assert [row["positive_score"], *row["negative_scores"]] == pytest.approx(expected.tolist(), abs=1e-5)
    assert row["first_stage_positive_score"] == source["positive_score"]
    assert row["first_stage_negative_scores"] == source["negative_scores"] and row["teacher"].startswith("cross-encoder")

    # an interruption: the cache keeps what was scored (its last line cut short); the rerun scores the rest only
    cache = out.with_name(out.name + ".teacher-cache.jsonl")
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:6]) + "\n" + lines[6][:10])
    out.unlink()
    assert rerankforge(args) == 0
    assert "5 already scored" in capsys.readouterr().err
    _same(_rows(out), rows)
    resumed = _rows(out)
    assert rerankforge(args) == 0  # everything cached now: nothing is scored again, to the last bit
    assert f"{len(lines) - 1} already scored" in capsys.readouterr().err and _rows(out) == resumed


def test_served_teacher_is_the_folders_served_ranking(tmp_path, mined_slice, tiny_reranker, scifact_slice,
                                                     tiny_bi_encoder):
    from rerankforge.reranker.folder import RerankerSettings, write_settings

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_reranker, teacher)
    write_settings(teacher, RerankerSettings(fusion_weights={"reranker": 0.5, "dense": 0.2, "bm25": 0.3}))
    out = tmp_path / "served.jsonl"
    assert rerankforge(["score-teacher", "--input", str(mined_slice), "--output", str(out), "--teacher", str(teacher),
                        "--kind", "served", "--data", str(scifact_slice), "--first_stage_model", tiny_bi_encoder]) == 0
    for row in _rows(out):
        scores = [row["positive_score"], *row["negative_scores"]]
        # a weighted sum of z-scores over the row's documents: they centre on 0, unlike any one signal's
        assert abs(sum(scores)) < 1e-6 * len(scores) + 1e-9 and row["teacher"] == f"served: {teacher}"


def test_a_served_teacher_that_weighs_the_order_reads_it_from_the_first_stage_scores(
        tmp_path, mined_slice, tiny_reranker, scifact_slice, tiny_bi_encoder, capsys):
    """The row's own order puts the positive first: a served ranking that weighs the first stage's order must take
    that order from the row's first-stage scores, or the teacher would give the label away."""
    from rerankforge.reranker.combiner import Combiner
    from rerankforge.reranker.folder import RerankerSettings, write_settings
    from rerankforge.reranker.scoring import Reranker

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_reranker, teacher)
    write_settings(teacher, RerankerSettings(fusion_weights={"reranker": 0.5, "position": 0.5}))
    out = tmp_path / "served.jsonl"
    args = ["score-teacher", "--input", str(mined_slice), "--output", str(out), "--teacher", str(teacher), "--kind",
            "served", "--data", str(scifact_slice), "--first_stage_model", tiny_bi_encoder]
    assert rerankforge(args) == 0
    row, scored = _rows(mined_slice)[0], _rows(out)[0]
    ids = [str(row["positive_id"]), *map(str, row["negative_ids"])]
    raw = Reranker.load(str(teacher)).score([(row["query"], t) for t in [row["positive"], *row["negatives"]]])
    first_stage = dict(zip(ids, [row["positive_score"], *row["negative_scores"]]))
    expected = dict(Combiner({"reranker": 0.5, "position": 0.5}).rank(
        sorted(ids, key=lambda d: -first_stage[d]), {"reranker": dict(zip(ids, map(float, raw)))}))
    assert [scored["positive_score"], *scored["negative_scores"]] == pytest.approx([expected[d] for d in ids], abs=1e-5)
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("positive_score", "negative_scores")})
                            + "\n" for r in _rows(mined_slice)))
    capsys.readouterr()
    assert rerankforge([*args[:2], str(bare), "--output", str(tmp_path / "bare-out.jsonl"), *args[5:]]) != 0
    assert "row 1: --kind served weighs the first stage's order" in capsys.readouterr().err


def test_local_causal_lm_judge_scores_yes_against_no_the_same_in_any_batch(tmp_path, tiny_bert):
    from rerankforge.training.teachers.judges import CausalLMJudge, JudgePrompt

    judge = CausalLMJudge(str(tiny_chat_lm(tmp_path / "lm", tiny_bert)), JudgePrompt(), max_length=64, batch_size=1)
    pairs = [("vitamin d", "Vitamin D and bone fractures in the elderly."), ("q", "a much longer passage " * 30),
             ("does smoking cause cancer", "no")]
    one_by_one = judge.score(pairs)
    judge.batch_size = 3  # left-padded together: positions follow each row's own tokens
    assert judge.score(pairs) == pytest.approx(one_by_one, abs=1e-4)
    assert len(set(round(s, 6) for s in one_by_one)) == 3  # the passage matters
    assert judge.yes != judge.no


def test_causal_lm_teacher_through_the_command(tmp_path, mined_slice, tiny_bert):
    lm = tiny_chat_lm(tmp_path / "lm", tiny_bert)
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text("system: Judge.\nuser: 'Q: {query} P: {passage} Relevant?'\n")
    out = tmp_path / "llm.jsonl"
    assert rerankforge(["score-teacher", "--input", str(mined_slice), "--output", str(out), "--teacher", str(lm),
                        "--kind", "causal-lm", "--prompt", str(prompt), "--max_length", "48"]) == 0
    assert all(row["teacher"] == f"causal-lm: {lm}" for row in _rows(out))


def test_openai_compatible_judge_reads_yes_and_no_logprobs(tmp_path, mined_slice, monkeypatch, capsys):
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    seen = []
    llm = FastAPI()

    @llm.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        seen.append((body, request.headers.get("authorization")))
        passage = body["messages"][-1]["content"]
        if "FAIL" in passage:
            return JSONResponse({"error": "overloaded"}, status_code=503)
        yes, no = (-0.1, -2.4) if "cell" in passage.lower() else (-3.0, -0.05)
        top = [{"token": "Yes", "logprob": yes}, {"token": " no", "logprob": no}, {"token": "maybe", "logprob": -5.0}]
        return {"choices": [{"message": {"role": "assistant", "content": "Yes" if yes > no else "no"},
                             "logprobs": {"content": [{"token": "Yes", "logprob": yes, "top_logprobs": top}]}}]}

    out = tmp_path / "judged.jsonl"
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    with running(llm) as url:
        args = ["score-teacher", "--input", str(mined_slice), "--output", str(out), "--teacher", "judge-model",
                "--kind", "openai", "--base_url", f"{url}/v1", "--api_key_env", "JUDGE_KEY"]
        assert rerankforge(args) == 0
        rows = _rows(out)
        for row in rows:
            for text, score in zip([row["positive"], *row["negatives"]], [row["positive_score"], *row["negative_scores"]]):
                assert score == pytest.approx(2.3 if "cell" in f"Query: {row['query']}\n\nPassage: {text}".lower()
                                              else -2.95)
        body, auth = seen[0]
        assert body["model"] == "judge-model" and body["max_tokens"] == 1 and body["logprobs"] is True
        assert auth == "Bearer sk-test" and "Answer yes or no." in body["messages"][-1]["content"]

        # a failing endpoint stops the run with its answer (exit 1: the input was fine), and what was scored
        # before stays cached
        broken = tmp_path / "broken.jsonl"
        rows_in = _rows(mined_slice)
        rows_in[-1]["negatives"][0] = "FAIL " + rows_in[-1]["negatives"][0]
        (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_in))
        capsys.readouterr()
        assert rerankforge(["score-teacher", "--input", str(tmp_path / "in.jsonl"), "--output", str(broken),
                            "--teacher", "judge-model", "--kind", "openai", "--base_url", f"{url}/v1"]) == 1
    err = capsys.readouterr().err
    assert "answered HTTP 503" in err and "overloaded" in err and not broken.exists()


@pytest.mark.parametrize("extra, words", [
    (["--kind", "served"], "--data: the served teacher combines dense and BM25 scores"),
    (["--kind", "openai"], "--base_url: the openai teacher needs the endpoint"),
    (["--output", "x.parquet"], "expected a .jsonl file"),
])
def test_bad_arguments_stop_before_any_model_loads(tmp_path, mined_slice, tiny_reranker, extra, words, capsys,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["score-teacher", "--input", str(mined_slice), "--output", "out.jsonl", "--teacher", tiny_reranker, *extra]
    assert rerankforge(args) == 2
    assert words in capsys.readouterr().err


def test_a_prompt_without_the_passage_is_refused(tmp_path, mined_slice, capsys):
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text("user: 'Is this relevant to {query}?'\n")
    assert rerankforge(["score-teacher", "--input", str(mined_slice), "--output", str(tmp_path / "o.jsonl"),
                        "--teacher", "m", "--kind", "openai", "--base_url", "http://127.0.0.1:9/v1",
                        "--prompt", str(prompt)]) == 2
    assert "expected the placeholder {passage} in the user message" in capsys.readouterr().err


def test_training_distils_from_the_teachers_scores(tmp_path, mined_slice, tiny_reranker, scifact_slice,
                                                   tiny_bi_encoder, tiny_bert):
    scored = tmp_path / "scored.jsonl"
    assert rerankforge(["score-teacher", "--input", str(mined_slice), "--output", str(scored),
                        "--teacher", tiny_reranker]) == 0
    out = tmp_path / "student"
    assert rerankforge(["train", "--model", tiny_bert, "--train_file", str(scored), "--data", str(scifact_slice),
                        "--first_stage_model", tiny_bi_encoder, "--output_dir", str(out), "--loss", "listwise_kl",
                        "--label_loss_weight", "0.5", "--max_steps", "2", "--batch_size", "2", "--num_negatives", "2",
                        "--max_length", "48", "--dev_queries", "0", "--eval_steps", "0", "--save_steps", "0",
                        "--min_train_queries", "0", "--mixed_precision", "no"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
