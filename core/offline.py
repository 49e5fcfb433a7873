"""Whether the user asked for no network: the Hugging Face offline variables, honoured everywhere
rerankforge would download something (models, BEIR datasets)."""

from __future__ import annotations

import os

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_mode() -> str | None:
    """`NAME=value` of the first offline variable set to a true value (as huggingface_hub reads them:
    1/ON/YES/TRUE, any case), else None. Any of them means "no network" to a user who sets it."""
    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{name}={value}"
    return None
