"""Publishing a trained reranker folder to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

from rerankforge.data_prep.errors import ConfigError, RerankforgeError

# Never uploaded: resumable training state, tracker logs and leftovers of interrupted saves.
IGNORE = ("checkpoints/*", "wandb/*", ".best/*", ".staging-*", "*.tmp")


def files_to_upload(folder: str | Path) -> list[str]:
    """The files of `folder` that `push_folder` uploads, relative to it."""
    from fnmatch import fnmatch

    folder = Path(folder)
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(f for f in files if not any(fnmatch(f, pattern) for pattern in IGNORE)
                  and not any(part.startswith(".") for part in Path(f).parts))


def push_folder(folder: str | Path, repo_id: str, private: bool = True, dry_run: bool = False,
                token: str | None = None) -> list[str]:
    """Upload the reranker in `folder` to `repo_id` (created if missing); with `dry_run`, only list
    what would be uploaded. Returns the uploaded (or listed) files."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder}: not a trained reranker folder (no config.json)")
    if "/" not in repo_id:
        raise ConfigError(f"hub_model_id: expected 'org/name', got {repo_id!r}")
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
        raise RerankforgeError(f"upload of {folder} to https://huggingface.co/{repo_id} failed ({reason}). Check "
                               f"network access and a token with write access (`hf auth login` or HF_TOKEN); "
                               f"the folder is complete and can be pushed later with `rerankforge push`.") from None
    return files
