"""`rerankforge calibrate`: fit on a reranker's dev split what serving it needs beyond the weights -- the
calibration (Platt scaling: its scores as probabilities of relevance) and the served ranking (how its score
combines with the first stage's dense / BM25 scores) -- and save both in its rerankforge.json: for a model
trained before training did this itself, or trained elsewhere (a CrossEncoder folder, with --data). Training
fits both at its end (`calibrate`, `fit_combination`); both go through DevSet."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from rerankforge.core.commands import add_command
from rerankforge.core.errors import DataError
from rerankforge.core.hardware import use_cpu_threads
from rerankforge.core.processes import processes
from rerankforge.reranker.calibration import targets_line
from rerankforge.reranker.folder import ADAPTER_DIR, read_settings, write_bm25_statistics, write_settings
from rerankforge.reranker.scoring import Reranker

from rerankforge.training.dev.dev_eval import DevSet
from rerankforge.training.dev.dev_split import DevSplitArgs, dev_split
from rerankforge.cli.export import check_folder

logger = logging.getLogger(__name__)

CALIBRATE_HELP = ("Fit on the reranker's dev split, and save in its rerankforge.json: Platt scaling, so its scores "
                  "read as probabilities of relevance (serve's relevance_score and min_relevance), and the served "
                  "ranking's weights of the reranker vs the first stage's dense / BM25 scores. Prints the expected "
                  "calibration error before / after, what each min_relevance keeps on dev, and the dev evidence "
                  "for the weights.")


@dataclass
class CalibrateArgs:
    model: str = field(metadata={"help": "The reranker folder (its rerankforge.json gets the calibration)."})
    backend: Literal["torch", "onnx", "onnx-int8"] = field(default="torch", metadata={
        "help": "What scores the dev candidates: fit the calibration with the backend that will serve."})
    batch_size: int = field(default=64, metadata={"help": "Most pairs per forward pass."})
    combination: bool = field(default=True, metadata={
        "help": "Also fit the served ranking's weights (false: keep the ones the folder has)."})


def add_calibrate_parser(subparsers) -> None:
    add_command(subparsers, "calibrate", CALIBRATE_HELP, [CalibrateArgs, DevSplitArgs], run_calibrate,
                shares_work=True)


def run_calibrate(args: CalibrateArgs, split: DevSplitArgs) -> int:
    folder = check_folder(args.model)
    settings = read_settings(folder)  # a bad rerankforge.json stops us before anything runs
    config, query_ids, where = dev_split(folder, split)
    logger.info(f"using {use_cpu_threads()}")
    reranker = Reranker.load(str(folder), batch_size=args.batch_size, backend=args.backend)
    logger.info(f"dev split: {len(query_ids)} queries of {where}, {config.first_stage} top-{config.dev_depth}")
    dev = DevSet.build(config, query_ids)
    try:
        scores = dev.score(reranker)
        calibration, report = dev.calibrate(scores, where)
    except ValueError as error:
        raise DataError(f"calibrate: cannot fit on {where}: {error}") from None
    if not processes().is_main:  # under a launcher the processes shared the scoring; the first one writes
        return 0
    settings.calibration_scale, settings.calibration_bias = calibration.scale, calibration.bias
    settings.calibration_fitted_on = report["fitted_on"]
    settings.relevance_targets = calibration.targets
    if args.combination:
        fit = dev.fit_combination(scores, where)
        settings.fusion_weights, settings.fusion_chosen_on = dict(fit.combiner.weights), fit.combiner.chosen_on
        settings.fusion_first_stage = fit.combiner.first_stage
        settings.request_fusion_weights = dict(fit.request.weights)
    folders = [folder] + ([folder / ADAPTER_DIR] if (folder / ADAPTER_DIR / "rerankforge.json").is_file() else [])
    for target in folders:  # the adapter scores like the merged model
        if args.combination:  # first, so rerankforge.json never names statistics the folder lacks
            write_bm25_statistics(target, dev.bm25_statistics if fit.request.uses_bm25 else None)
        write_settings(target, settings)
    print(f"probability = sigmoid({calibration.scale:.4f} x score + {calibration.bias:.4f}), fitted on "
          f"{report['fitted_on']}")
    print(f"expected calibration error on dev: plain sigmoid {report['ece_sigmoid']:.4f}, calibrated "
          f"{report['ece_calibrated']:.4f} (in-sample; `rerankforge eval` measures it on test)")
    print("min_relevance on dev: " + ", ".join(f"{t}: precision {v['precision']:.2f} recall {v['recall']:.2f}"
                                               for t, v in report["min_relevance"].items()))
    print(targets_line(report["targets"]))
    if args.combination:
        print(fit.message)
    print(f"saved in {folder / 'rerankforge.json'}")
    return 0
