"""Cross-encoder training: config, data, model, losses, the accelerate loop, dev split, card and Hub.

The package is also the public API's `train` call (`from rerankforge import train; train(...)`): the
package and the call share the name `rerankforge.train`, and importing any module of the package sets that
attribute to the package, so the package itself is callable (see `train.cli.train_with`)."""

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, config: str | None = None, **options) -> dict:
        """`rerankforge train`: fine-tune a cross-encoder and save the reranker folder (`output_dir`); returns
        the run's metrics (dev first stage vs reranked, best step, throughput). `config`: a YAML recipe (a
        path, or the name of a shipped one such as "scifact_minilm_full.yaml"); `options` override its keys,
        e.g. train_file="mined.jsonl", data="scifact", output_dir="reranker", num_epochs=1. One process; for
        several, use `accelerate launch train/run.py`."""
        from .cli import train_with

        return train_with(config, **options)


sys.modules[__name__].__class__ = _CallablePackage
