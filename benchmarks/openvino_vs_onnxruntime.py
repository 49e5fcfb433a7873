"""Does OpenVINO pay on this CPU? Its fp32 and its NNCF int8 (static, calibrated) against rerankforge's torch and
ONNX Runtime int8 backends, on the same SciFact pairs, round robin query by query, one run.

OpenVINO is not a rerankforge dependency: run this in an environment with `pip install openvino nncf` beside
rerankforge. The int8 model is calibrated on training pairs (the mined file), never on the test queries scored.

    python benchmarks/openvino_vs_onnxruntime.py --model outputs/scifact/reranker-minilm-full \\
        --bundle scifact-test-dense50.json.gz --train-file outputs/scifact/mined.r3-30.train.jsonl --queries 12
(`--bundle`: the workload file benchmarks/inference_vs_sentence_transformers.py writes with --write-bundle.)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="reranker folder with onnx/model_qint8_*.onnx exported")
    parser.add_argument("--bundle", required=True, help="workload: test queries and their top-k texts")
    parser.add_argument("--train-file", required=True, help="mined training file: the int8 calibration pairs")
    parser.add_argument("--queries", type=int, default=12, help="test queries scored (each one call)")
    parser.add_argument("--calibration-pairs", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import nncf
    import openvino as ov
    import torch

    from rerankforge.reranker.export import spearman
    from rerankforge.reranker.scoring import Reranker

    torch.set_num_threads(args.threads)
    with gzip.open(args.bundle, "rt", encoding="utf-8") as src:
        workload = json.load(src)
    test = [[(q["text"], text) for _, text in q["docs"]] for q in list(workload["queries"].values())[:args.queries]]
    rows = [json.loads(line) for line in Path(args.train_file).read_text().splitlines()[:args.calibration_pairs]]
    calibration = [(r["query"], d) for r in rows for d in [r["positive"], *r["negatives"]]][:args.calibration_pairs]

    torch_reranker = Reranker.load(args.model, precision="fp32")
    ort_int8 = Reranker.load(args.model, backend="onnx-int8")
    encoder = torch_reranker.encoder

    def batches(pairs, size):
        encoded = encoder.encode(pairs)
        return [{k: v.numpy() for k, v in encoder.collate(encoded[i:i + size]).items()}
                for i in range(0, len(encoded), size)]

    example = {k: torch.from_numpy(v) for k, v in batches(calibration[:4], 4)[0].items()}
    graph = ov.convert_model(torch_reranker.model.eval(), example_input=example)
    core = ov.Core()
    settings = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
    fp32 = core.compile_model(graph, "CPU", settings)
    data = batches(calibration, 16)
    quantized = nncf.quantize(graph, nncf.Dataset(data), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(data))
    int8 = core.compile_model(quantized, "CPU", settings)

    def openvino(compiled):
        def score(pairs):
            return np.concatenate([compiled(batch)[0].reshape(-1) for batch in batches(pairs, 32)])
        return score

    systems = {"rerankforge torch fp32": torch_reranker.score, "rerankforge onnx-int8 (ORT)": ort_int8.score,
               "OpenVINO fp32": openvino(fp32), "OpenVINO int8 (NNCF, static)": openvino(int8)}
    for score in systems.values():  # warm-up
        score(test[0][:8])
    seconds = {name: 0.0 for name in systems}
    scores = {name: [] for name in systems}
    names = list(systems)
    for turn, pairs in enumerate(test):
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            started = time.perf_counter()
            scores[name].append(systems[name](pairs))
            seconds[name] += time.perf_counter() - started
    reference = np.concatenate(scores[names[0]])
    count = sum(len(p) for p in test)
    print(f"{count} pairs ({len(test)} queries), {args.threads} threads, torch "
          f"{torch.backends.cpu.get_cpu_capability()}, OpenVINO {ov.__version__}, NNCF {nncf.__version__}")
    print("| system | pairs/s | x torch | Spearman vs torch |\n|---|---|---|---|")
    for name in names:
        print(f"| {name} | {count / seconds[name]:.1f} | {seconds[names[0]] / seconds[name]:.2f} | "
              f"{spearman(reference, np.concatenate(scores[name])):.4f} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
