"""The end of a training run, on the main process: the weights kept (the best dev evaluation's, or the last), what
is fitted on the dev split with them (calibration, the served ranking's weights), then the output folder --
the reranker, its training config, metrics and model card."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from accelerate.logging import get_logger

from rerankforge.core.files import atomic_write_text
from rerankforge.reranker.calibration import targets_line
from rerankforge.reranker.folder import RerankerSettings, save_reranker

from .publish.card import write_model_card
from .checkpoints import BEST, BEST_WEIGHTS, TrainState, restore_best
from .config import TrainConfig, to_dict

logger = get_logger(__name__)


def finish_run(config: TrainConfig, state: TrainState, model, tokenizer, dev, reranker, dev_scores: dict | None,
               metrics: dict) -> None:
    """Save the run into `config.output_dir`. `dev_scores` are the last dev evaluation's (of the weights at the
    last step); `metrics` (the loop's) gains what is fitted here and is written as metrics.json."""
    output_dir = Path(config.output_dir)
    best = output_dir / BEST
    if config.keep_best and (best / BEST_WEIGHTS).is_file():
        restore_best(model, best)
    settings, bm25 = RerankerSettings(max_length=config.max_length), None
    if dev is not None and (config.fit_combination or config.calibrate):
        # The last evaluation scored the weights being saved unless older best ones came back.
        kept_last = not (config.keep_best and state.best_step not in (None, state.step))
        saved_scores = dev_scores if kept_last and dev_scores is not None else dev.score(reranker)
        if config.calibrate:
            _calibrate(dev, saved_scores, settings, metrics)
        if config.fit_combination:
            fit = dev.fit_combination(saved_scores, f"dev split of {config.data}/{config.split}")
            settings.fusion_weights, settings.fusion_chosen_on = dict(fit.combiner.weights), fit.combiner.chosen_on
            settings.fusion_first_stage = fit.combiner.first_stage
            settings.request_fusion_weights = dict(fit.request.weights)
            bm25 = dev.bm25_statistics if fit.request.uses_bm25 else None  # what requests get their BM25 from
            metrics["combination"] = fit.evidence
            logger.info(fit.message)
    tokenizer.model_max_length = config.max_length  # CrossEncoder(path) then truncates as in training
    save_reranker(model, tokenizer, output_dir, config.model, settings, bm25)
    atomic_write_text(output_dir / "train_config.json", json.dumps(to_dict(config), indent=2) + "\n")
    atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_model_card(output_dir, config, metrics)
    shutil.rmtree(best, ignore_errors=True)


def _calibrate(dev, scores: dict, settings: RerankerSettings, metrics: dict) -> None:
    """Platt scaling fitted on the dev scores, into `settings` and metrics["calibration"]; a warning where it
    can't be fitted (e.g. no judged-relevant document among a tiny dev split's candidates)."""
    try:
        calibration, metrics["calibration"] = dev.calibrate(scores)
    except ValueError as error:
        logger.warning(f"calibration: not fitted ({error}); relevance scores stay the plain sigmoid")
        return
    settings.calibration_scale, settings.calibration_bias = calibration.scale, calibration.bias
    settings.calibration_fitted_on = metrics["calibration"]["fitted_on"]
    settings.relevance_targets = calibration.targets
    logger.info(f"calibration fitted on dev: {_calibration_line(metrics['calibration'])}")


def _calibration_line(report: dict) -> str:
    at = report["min_relevance"].get("0.5", {})
    return (f"probability = sigmoid({report['scale']:.3f} x score + {report['bias']:.3f}); expected calibration "
            f"error {report['ece_sigmoid']:.3f} (plain sigmoid) -> {report['ece_calibrated']:.3f} (in-sample); "
            f"min_relevance 0.5 keeps precision {at.get('precision', float('nan')):.2f}, "
            f"recall {at.get('recall', float('nan')):.2f}; {targets_line(report.get('targets') or {})}")

