"""Where a trained reranker comes from, as the Hub's model card metadata says it: the Hub ids of its training
data and base model, and its licence -- the more restrictive of the data's and the base model's.

Licences are the Hub's ids (https://huggingface.co/docs/hub/repositories-licenses); a config may spell them as
people do ("CC BY-NC 2.0", "Apache License 2.0"). What cannot be mapped, or two different restricting licences
(share-alike, non-commercial), gives `other` with a `license_name` and the reason in the card's text: never a
guess."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KnownDataset:
    pretty_name: str
    hub_ids: tuple[str, ...]
    """Hub datasets holding it (the original release first); the last is what its split names follow."""
    license: str | None
    """Hub licence id; None where its distributors state none."""
    license_note: str


# The BEIR-layout collections rerankforge is measured on (../shared/datasets/*/README.md says where each is from).
KNOWN_DATASETS = {
    "scifact": KnownDataset(
        "SciFact", ("allenai/scifact", "BeIR/scifact"), "cc-by-nc-2.0",
        "SciFact is released by its authors (Wadden et al., EMNLP 2020) under CC BY-NC 2.0: non-commercial use only"),
    "medline": KnownDataset(
        "MEDLINE (Cornell SMART test collection)", (), None,
        "the MEDLINE (MED) test collection states no licence; the Glasgow IR group distributes it freely for research"),
    "npl": KnownDataset(
        "NPL (Vaswani and Cameron, 1970)", (), None,
        "the NPL test collection states no licence; the Glasgow IR group distributes it freely for research"),
}
# Licences of base models whose card may not be at hand (a Hub id not in the local cache).
KNOWN_MODEL_LICENSES = {"sentence-transformers/all-MiniLM-L6-v2": "apache-2.0"}

PERMISSIVE = {"apache-2.0", "mit", "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "isc", "zlib",
              "unlicense", "wtfpl", "bsl-1.0", "postgresql", "ecl-2.0", "afl-3.0", "ncsa", "cc0-1.0", "cc-by-2.0",
              "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "odc-by", "pddl", "cdla-permissive-1.0", "cdla-permissive-2.0"}
SHARE_ALIKE = {"cc-by-sa-3.0", "cc-by-sa-4.0", "odbl", "cdla-sharing-1.0", "mpl-2.0", "epl-1.0", "epl-2.0",
               "eupl-1.1", "eupl-1.2", "lgpl-2.1", "lgpl-3.0", "gpl-2.0", "gpl-3.0", "agpl-3.0", "gfdl"}
RESTRICTED = {"cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0",
              "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0"}
"""Non-commercial or no-derivatives: the strictest of the three kinds."""
KIND = {**{i: 0 for i in PERMISSIVE}, **{i: 1 for i in SHARE_ALIKE}, **{i: 2 for i in RESTRICTED}}
ALIASES = {"apache": "apache-2.0", "apache2": "apache-2.0", "apache-2": "apache-2.0", "cc0": "cc0-1.0",
           "cc-zero": "cc0-1.0", "mit-license": "mit", "odc-by-1.0": "odc-by", "odbl-1.0": "odbl",
           "pddl-1.0": "pddl", "gpl-3": "gpl-3.0", "gplv3": "gpl-3.0"}
UNKNOWN = {"", "none", "null", "unknown", "n/a", "na", "unspecified", "other"}


def hub_license(text: str | None) -> str | None:
    """The Hub licence id of a licence as written in a config or card ("CC BY-NC 2.0 (SciFact)" ->
    cc-by-nc-2.0); None when it says nothing or is not a licence the Hub lists."""
    if text is None:
        return None
    words = re.sub(r"\([^)]*\)", " ", str(text)).lower()  # "(SciFact)": whose licence, not which
    words = re.sub(r"\b(licen[cs]e|version|the|international|generic|unported)\b", " ", words)
    for long, short in (("creative commons", "cc"), ("attribution", "by"), ("noncommercial", "nc"),
                        ("non-commercial", "nc"), ("sharealike", "sa"), ("noderivatives", "nd"), ("noderivs", "nd")):
        words = words.replace(long, short)
    slug = re.sub(r"-+", "-", re.sub(r"[\s_/,;:]+", "-", words.strip())).strip("-")
    slug = re.sub(r"-v(?=\d)", "-", slug)  # "apache-v2" -> "apache-2"
    slug = ALIASES.get(slug, slug)
    if slug not in KIND and re.fullmatch(r".*-\d", slug) and f"{slug}.0" in KIND:  # "cc-by-nc-2" -> "cc-by-nc-2.0"
        slug = f"{slug}.0"
    return slug if slug in KIND else None


@dataclass(frozen=True)
class CardLicense:
    license: str
    """A Hub licence id, `other` where none fits."""
    license_name: str | None
    """With `other`: a short id for it (the Hub shows this)."""
    reason: str
    """One sentence for the card: which licences went into it and why it is this one."""


def card_license(data: str | None, data_source: str, model: str | None, model_source: str) -> CardLicense:
    """The licence of a model trained on data under licence `data` from a base model under `model` (as written:
    Hub ids or common spellings; None where unknown). Beside a permissive one, the other (share-alike or
    non-commercial) wins; two permissive ones give the base model's (the data's attribution is in the card);
    anything unknown, or two different restricting licences (share-alike, non-commercial), give `other`."""
    data = None if data is None or data.strip().lower() in UNKNOWN else data
    data_id, model_id = hub_license(data), hub_license(model)
    given = (f"the training data ({data_source}) is under {data_id or data or 'no stated licence'} and the base "
             f"model ({model_source}) under {model_id or 'a licence not known here'}")
    if data_id is None or model_id is None:
        name = slug_license(data) if data is not None and data_id is None else "unknown"
        return CardLicense("other", name, f"{given}: check both terms before any use")
    if data_id == model_id:
        return CardLicense(model_id, None, f"{given}; the model carries it too")
    if KIND[data_id] == KIND[model_id] == 0:
        return CardLicense(model_id, None, f"{given}; the model carries {model_id}, and this card attributes the data")
    if min(KIND[data_id], KIND[model_id]) == 0:
        strict = data_id if KIND[data_id] > KIND[model_id] else model_id
        return CardLicense(strict, None, f"{given}; the model carries the more restrictive, {strict}")
    return CardLicense("other", f"{data_id}-and-{model_id}", f"{given}; both apply")


def data_license(stated: str | None, known: KnownDataset | None) -> tuple[str | None, str]:
    """(licence, note) of the training data: what the config states, or the known collection's; where both are
    Hub licences and differ, the stricter (a config may carry an old, wrong value), said in the note."""
    stated = None if stated is None or stated.strip().lower() in UNKNOWN else stated
    if known is None:
        return stated, ""
    note = known.license_note
    if stated is None or known.license is None:
        return stated or known.license, note
    ours = hub_license(stated)
    if ours is None or ours == known.license:
        return stated, note
    if KIND[known.license] > KIND[ours]:
        return known.license, f"{note} (the training config states {stated}; the stricter applies)"
    return stated, note


def slug_license(text: str) -> str:
    """A `license_name` for a licence the Hub does not list."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")[:64] or "unknown"


def dataset_key(data: str) -> str:
    """The name a `data` argument goes by: hf:NAME[:CONFIG] -> NAME, a Hub-like id or a folder -> its last part,
    lower-case; so `scifact`, `BeIR/scifact` and ../shared/datasets/scifact are all `scifact`."""
    text = data.removeprefix("hf:").split(":", 1)[0] if data.startswith("hf:") else data
    return Path(text.rstrip("/\\")).name.lower()


def dataset_hub_ids(data: str) -> tuple[str, ...]:
    """Hub datasets `data` comes from: a known collection's, an `hf:` source's own id, a bare BEIR name's
    BeIR/NAME; none for a local folder or file of unknown origin."""
    known = KNOWN_DATASETS.get(dataset_key(data))
    if known is not None:
        return known.hub_ids
    if data.startswith("hf:"):
        return (data.removeprefix("hf:").split(":", 1)[0],)
    if re.fullmatch(r"[A-Za-z0-9._-]+", data) and not Path(data).exists():
        return (f"BeIR/{data}",)  # a bare name is fetched from the BEIR mirror (data_prep/sources.py)
    return ()


def base_model_license(ref: str, hub_id: str | None) -> str | None:
    """The base model's Hub licence id: from a known id, else from the model card in its local folder (e.g. a
    `rerankforge train` folder, whose card says its own licence) or in the Hugging Face cache. Never downloads."""
    if hub_id in KNOWN_MODEL_LICENSES:
        return KNOWN_MODEL_LICENSES[hub_id]
    from huggingface_hub import ModelCard, try_to_load_from_cache

    readme = Path(ref).expanduser() / "README.md"
    if not readme.is_file() and hub_id is not None:  # the Hub model's card, if the local cache holds it
        try:
            cached = try_to_load_from_cache(hub_id, "README.md")
        except ValueError:  # not a valid repo id after all
            cached = None
        readme = Path(cached) if isinstance(cached, str) else readme
    if not readme.is_file():
        return None

    try:
        return hub_license(ModelCard.load(readme, ignore_metadata_errors=True).data.license)
    except Exception:  # an unreadable card says nothing about the licence
        return None
