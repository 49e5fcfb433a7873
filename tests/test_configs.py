"""Every YAML config shipped in configs/ loads into its dataclass (so a broken config never ships)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_there_are_training_and_serving_configs():
    names = {p.name for p in CONFIGS}
    assert {"scifact_minilm_full.yaml", "scifact_minilm_lora.yaml", "smoke.yaml", "demo_scifact.yaml",
            "serve_scifact.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path, mined_slice):
    if path.name.startswith("serve_"):
        from rerankforge.serve.config import ServeConfig, load_serve_config

        config = load_serve_config(["--config", str(path)])
        assert isinstance(config, ServeConfig) and config.reranker
    else:
        from rerankforge.train.config import TrainConfig, load_config

        config = load_config(["--config", str(path), "--train_file", str(mined_slice)])
        assert isinstance(config, TrainConfig) and config.train_file == str(mined_slice)
    # bf16 is emulated (~10x slower) on CPUs without AVX512-BF16/AMX: no recipe may ask for it outright
    assert config.precision == "auto" if path.name.startswith("serve_") else config.mixed_precision == "auto"

