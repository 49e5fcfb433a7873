"""Progress bars, and the one switch that turns them all off for a process (`--no_progress`).

Long work shows a tqdm bar (`progress_bar`, a drop-in for `tqdm.auto.tqdm`). The switch reaches every bar a
command can draw: ours, bm25s' (through the `show_progress` arguments bm25s takes: see bm25.py), and those of
the Hugging Face libraries (transformers, huggingface_hub, datasets), which keep switches of their own."""

from __future__ import annotations

import sys

_enabled = True
_switched_off: set[str] = set()  # the Hugging Face switches we turned off (and so may turn back on)


def progress_enabled() -> bool:
    """Whether progress bars are shown (False after `--no_progress`)."""
    return _enabled


def set_progress(enabled: bool) -> None:
    """Show progress bars or not, from now on, in this process."""
    global _enabled
    _enabled = enabled
    sync_libraries()


def progress_bar(*args, **kwargs):
    """`tqdm.auto.tqdm(*args, **kwargs)`, disabled when the switch is off (or when `disable=True` is given)."""
    from tqdm.auto import tqdm

    return tqdm(*args, **{**kwargs, "disable": bool(kwargs.get("disable")) or not _enabled})


def sync_libraries() -> None:
    """Apply the switch to the Hugging Face libraries imported so far. Whoever imports `datasets` later calls it
    again (it is a heavy import, paid only by those who read Hugging Face data)."""
    for name, (disable, enable) in _library_switches().items():
        if not _enabled and name not in _switched_off:
            disable()
            _switched_off.add(name)
        elif _enabled and name in _switched_off:  # only what we turned off: a user's HF_*_DISABLE_* setting stays
            enable()
            _switched_off.discard(name)


def _library_switches() -> dict:
    switches = {}
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        switches["transformers"] = (transformers_logging.disable_progress_bar, transformers_logging.enable_progress_bar)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        switches["huggingface_hub"] = (disable_progress_bars, enable_progress_bars)
    if "datasets" in sys.modules:
        import datasets

        switches["datasets"] = (datasets.disable_progress_bars, datasets.enable_progress_bars)
    return switches
