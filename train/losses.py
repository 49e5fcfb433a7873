"""Ranking losses over groups of scores, and `LOSSES`, the registry of the losses a config may name: each loss's
description (the model card's words), whether it distills, and how it is computed from a config.

Every loss takes `scores` of shape (batch, group): column 0 is the positive, columns 1.. its
negatives, and `mask` (same shape, bool) marks which entries are real. Distillation losses also take
`teacher` scores of the same shape: a teacher reranker's (train/teacher.py), or the first-stage scores
carried in the training file. torch is imported by the functions, so the registry costs nothing to read
(train/config.py checks configs with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

NEG_INF = -1e4  # masked logits; finite so that fp16/bf16 softmax stays free of NaNs


def listwise_softmax(scores: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                     label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of picking the positive among its group (InfoNCE over 1 + n documents). With
    `label_smoothing` e the target is (1 - e) on the positive plus e spread evenly over the group's real
    entries (padding gets none), a softer target like ListNet's softmax of the 1/0 labels."""
    import torch
    import torch.nn.functional as F

    logits = (scores / temperature).masked_fill(~mask, NEG_INF)
    if not label_smoothing:
        return F.cross_entropy(logits, torch.zeros(len(scores), dtype=torch.long, device=scores.device))
    real = mask.to(logits.dtype)
    target = real * (label_smoothing / real.sum(dim=-1, keepdim=True))
    target[:, 0] += 1 - label_smoothing
    log_probs = F.log_softmax(logits, dim=-1).masked_fill(~mask, 0.0)
    return -(target * log_probs).sum(dim=-1).mean()


def binary_cross_entropy(scores: torch.Tensor, mask: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Pointwise: positive -> 1, negatives -> 0; the positive term weighted by `pos_weight`."""
    import torch
    import torch.nn.functional as F

    labels = torch.zeros_like(scores)
    labels[:, 0] = 1.0
    weights = mask.to(scores.dtype)
    weights[:, 0] *= pos_weight
    losses = F.binary_cross_entropy_with_logits(scores, labels, reduction="none")
    return (losses * weights).sum() / weights.sum()


def ranknet(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pairwise logistic loss log(1 + exp(s_neg - s_pos)) over every (positive, negative) pair."""
    import torch.nn.functional as F

    diff = scores[:, :1] - scores[:, 1:]
    return _masked_mean(F.softplus(-diff), mask[:, 1:])


def margin_ranking(scores: torch.Tensor, mask: torch.Tensor, margin: float) -> torch.Tensor:
    """Pairwise hinge: max(0, margin - (s_pos - s_neg))."""
    import torch.nn.functional as F

    diff = scores[:, :1] - scores[:, 1:]
    return _masked_mean(F.relu(margin - diff), mask[:, 1:])


def margin_mse(scores: torch.Tensor, mask: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Distillation: the student's margins (pos - neg) regress onto the teacher's (Hofstaetter et al. 2020)."""
    student = scores[:, :1] - scores[:, 1:]
    target = teacher[:, :1] - teacher[:, 1:]
    return _masked_mean((student - target) ** 2, mask[:, 1:])


def listwise_kl(scores: torch.Tensor, mask: torch.Tensor, teacher: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    """Distillation: KL(teacher || student) between the softmax distributions (at `temperature`) over each
    group, times temperature^2 so the gradients keep their size whatever the temperature (Hinton et al. 2015)."""
    import torch.nn.functional as F

    student = F.log_softmax((scores / temperature).masked_fill(~mask, NEG_INF), dim=-1)
    target = F.softmax((teacher / temperature).masked_fill(~mask, NEG_INF), dim=-1)
    return F.kl_div(student, target, reduction="batchmean") * temperature ** 2


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=1)


@dataclass(frozen=True)
class Loss:
    """One loss a config may name."""

    name: str
    description: str
    """What the model card says it trained with."""
    compute: Callable
    """(config, scores, mask, teacher scores or None) -> the loss."""
    distills: bool = False
    """Learns a teacher's scores (`teacher`, or the first-stage scores in the training file)."""


def _bce(config, scores, mask, teacher):
    pos_weight = config.pos_weight if config.pos_weight is not None else float(config.num_negatives)
    return binary_cross_entropy(scores, mask, pos_weight)


LOSSES = {loss.name: loss for loss in (
    Loss("listwise", "listwise softmax cross-entropy (1 positive + n hard negatives per group)",
         lambda config, scores, mask, teacher: listwise_softmax(scores, mask, config.temperature,
                                                                config.label_smoothing)),
    Loss("bce", "pointwise binary cross-entropy", _bce),
    Loss("ranknet", "pairwise RankNet (logistic) loss", lambda config, scores, mask, teacher: ranknet(scores, mask)),
    Loss("margin", "pairwise margin (hinge) loss",
         lambda config, scores, mask, teacher: margin_ranking(scores, mask, config.margin)),
    Loss("margin_mse", "margin-MSE distillation (student vs teacher pos - neg score margins)",
         lambda config, scores, mask, teacher: margin_mse(scores, mask, teacher), distills=True),
    Loss("listwise_kl", "listwise KL distillation (teacher vs student softmax over each group)",
         lambda config, scores, mask, teacher: listwise_kl(scores, mask, teacher, config.distill_temperature),
         distills=True),
)}
LOSS_NAMES = tuple(LOSSES)
DISTILLATION_LOSSES = tuple(name for name, loss in LOSSES.items() if loss.distills)


def compute_loss(config, scores: torch.Tensor, mask: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
    """The configured loss (scores in fp32 whatever the autocast precision); a distillation loss mixed with the
    listwise label loss at `label_loss_weight`."""
    loss = LOSSES[config.loss]
    scores = scores.float()
    if not loss.distills:
        return loss.compute(config, scores, mask, None)
    if teacher is None:
        raise ValueError(f"loss {config.loss} needs teacher scores")  # groups.py checks the file earlier
    distill = loss.compute(config, scores, mask, teacher.float())
    if not config.label_loss_weight:
        return distill
    weight = config.label_loss_weight
    return (1 - weight) * distill + weight * listwise_softmax(scores, mask, config.temperature, config.label_smoothing)
