"""Every YAML config shipped in configs/ loads into its dataclass (so a broken config never ships)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_there_are_training_and_serving_configs():
    names = {p.name for p in CONFIGS}
    assert {"scifact_minilm_full.yaml", "scifact_minilm_lora.yaml", "scifact_minilm_distill_l3.yaml", "smoke.yaml",
            "demo_scifact.yaml", "serve_scifact.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path, mined_slice):
    if path.name.startswith("serve_"):
        from rerankforge.serve.config import ServeConfig, load_serve_config

        config = load_serve_config(["--config", str(path)])
        assert isinstance(config, ServeConfig) and config.reranker
    else:
        from rerankforge.training.config import TrainConfig, load_config

        config = load_config(["--config", str(path), "--train_file", str(mined_slice)])
        assert isinstance(config, TrainConfig) and config.train_file == str(mined_slice)
    # bf16 is emulated (~10x slower) on CPUs without AVX512-BF16/AMX: no recipe may ask for it outright
    assert config.precision == "auto" if path.name.startswith("serve_") else config.mixed_precision == "auto"


def test_the_configs_ship_with_the_package():
    """`rerankforge demo` after a regular (non-editable) install: the recipes are package data."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    from rerankforge.cli.demo import DEMO_CONFIG
    from rerankforge.configs import recipe

    assert DEMO_CONFIG == recipe("demo_scifact.yaml") and DEMO_CONFIG.is_file()
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "rerankforge.configs" in setuptools["packages"]
    assert setuptools["package-dir"]["rerankforge.configs"] == "configs"
    patterns = setuptools["package-data"]["rerankforge.configs"]
    shipped = [p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")]
    assert len(shipped) >= 8 and "accelerate/cpu_2proc.yaml" in shipped
    for name in shipped:
        assert any(fnmatch.fnmatch(name, pattern) and name.count("/") == pattern.count("/")  # setuptools' globs
                   for pattern in patterns), f"{name} is not package data"
        assert recipe(name).is_file()


def test_an_unquoted_no_is_the_fp32_precision(tmp_path):
    """YAML reads `mixed_precision: no` (accelerate's spelling) as false; it means fp32, not an error."""
    from rerankforge.core.errors import ConfigError
    from rerankforge.training.config import load_config

    (tmp_path / "mined.jsonl").write_text("")
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"train_file: {tmp_path / 'mined.jsonl'}\nmixed_precision: no\n")
    assert load_config(["--config", str(config_file)]).mixed_precision == "no"
    config_file.write_text(f"train_file: {tmp_path / 'mined.jsonl'}\nmixed_precision: yes\n")
    with pytest.raises(ConfigError, match="mixed_precision must be one of auto, no, bf16, fp16; got True"):
        load_config(["--config", str(config_file)])
