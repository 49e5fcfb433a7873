"""Publishing a trained reranker folder to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from rerankforge.core.errors import ConfigError, OperationError
from rerankforge.reranker.folder import ADAPTER_DIR, local_adapter_base

# Never uploaded: resumable training state, tracker logs and leftovers of interrupted saves.
IGNORE = ("checkpoints/*", "wandb/*", ".best/*", ".staging-*", "*.tmp", "lr-search/*")


def files_to_upload(folder: str | Path) -> list[str]:
    """The files of `folder` that `push_folder` uploads, relative to it. A LoRA adapter whose base model is a
    folder on this machine is left out (see `adapter_left_out`): published, it would point at a local path."""
    from fnmatch import fnmatch

    folder = Path(folder)
    ignore = IGNORE + ((f"{ADAPTER_DIR}/*",) if local_adapter_base(folder) else ())
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in files if not any(fnmatch(f, pattern) for pattern in ignore)
                  and not any(part.startswith(".") for part in Path(f).parts))


def adapter_left_out(folder: str | Path) -> str | None:
    """Why `folder`'s adapter/ is not uploaded, for the command's output; None where it is (or there is none)."""
    base = local_adapter_base(folder)
    return None if base is None else (f"{ADAPTER_DIR}/ not uploaded: its base model is the local folder {base}, "
                                      f"not a Hub id (the merged model in the folder itself is complete)")


def push_folder(folder: str | Path, repo_id: str, private: bool = True, dry_run: bool = False,
                token: str | None = None, eval_report: str | Path | None = None) -> list[str]:
    """Upload the reranker in `folder` to `repo_id` (created if missing); with `dry_run`, only list
    what would be uploaded. A folder `rerankforge train` wrote first gets its model card rebuilt for `repo_id`
    (train/card.py), with the test figures of `eval_report` (a `rerankforge eval` output) where given.
    Returns the uploaded (or listed) files."""
    from .card import refresh_model_card

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder}: not a trained reranker folder (no config.json)")
    if "/" not in repo_id:
        raise ConfigError(f"hub_model_id: expected 'org/name', got {repo_id!r}")
    refresh_model_card(folder, repo_id, eval_report)
    files = files_to_upload(folder)
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", allow_patterns=files,
                          commit_message="Upload reranker trained with rerankforge")
    except Exception as error:  # network, auth (401/403), quota: all mean "not uploaded", said plainly
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''}"
        raise OperationError(f"upload of {folder} to https://huggingface.co/{repo_id} failed ({reason}). Check "
                             f"network access and a token with write access (`hf auth login` or HF_TOKEN); "
                             f"the folder is complete and can be pushed later with `rerankforge push`.") from None
    return files
