"""Documents to index, and how long ones are split into overlapping token chunks.

Sources: a BEIR folder (its corpus.jsonl), a JSONL file of `{"_id" or "id", "title"?, "text"}`, or a
folder of .txt/.md files (id = path relative to the folder, title = the first Markdown heading, else
the file name)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from rerankforge.core.errors import ConfigError, DataError, located
from rerankforge.data_prep.beir import check_id
from rerankforge.data_prep.collection import Document

TEXT_SUFFIXES = (".txt", ".md", ".markdown")


@dataclass
class ChunkingConfig:
    """How documents become the passages that are embedded, searched and reranked."""

    chunk_tokens: int = field(default=256, metadata={
        "help": "Tokens per chunk (bi-encoder tokenizer); 0 keeps every document whole (truncated by the models)."})
    chunk_overlap: int = field(default=32, metadata={"help": "Tokens shared by consecutive chunks."})
    doc_score: Literal["max", "sum", "mean"] = field(default="max", metadata={
        "help": "A document's score from its retrieved chunks' scores: max (its best passage), sum or mean."})

    def __post_init__(self):
        if self.chunk_tokens < 0:
            raise ConfigError(f"chunk_tokens must be 0 (no chunking) or more, got {self.chunk_tokens}")
        if self.chunk_tokens and not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError(f"chunk_overlap must be in [0, chunk_tokens={self.chunk_tokens}), got {self.chunk_overlap}")


@dataclass
class Chunk:
    chunk_id: str
    doc_id: str
    title: str
    text: str

    @property
    def document(self) -> Document:
        return Document(title=self.title, text=self.text)


def load_documents(path: str | Path) -> dict[str, Document]:
    """Documents from a BEIR folder, a JSONL file, or a folder of text/Markdown files."""
    source = Path(path)
    if not source.exists():
        raise DataError(f"--docs: no such file or folder: {source}")
    if source.is_dir() and any((source / name).is_file() for name in ("corpus.jsonl", "corpus.jsonl.gz")):
        from rerankforge.data_prep.beir import load_corpus

        docs = load_corpus(source)
    elif source.is_dir():
        docs = _text_files(source)
    elif source.name.endswith((".jsonl", ".jsonl.gz")):
        docs = _jsonl(source)
    else:
        raise DataError(f"--docs {source}: expected a BEIR folder, a .jsonl file or a folder of "
                        f"{'/'.join(TEXT_SUFFIXES)} files")
    if not docs:
        raise DataError(f"--docs {source}: no documents found")
    return docs


def chunk_documents(docs: dict[str, Document], tokenizer, config: ChunkingConfig) -> list[Chunk]:
    """Each document's text cut into windows of `chunk_tokens` tokens that overlap by `chunk_overlap`;
    the title is kept with every chunk. Chunks are cut at token boundaries of the original text."""
    chunks = []
    for doc_id, doc in docs.items():
        if not config.chunk_tokens:
            chunks.append(Chunk(doc_id, doc_id, doc.title, doc.text))
            continue
        offsets = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True,
                            verbose=False)["offset_mapping"]
        stride = config.chunk_tokens - config.chunk_overlap
        starts = range(0, max(len(offsets) - config.chunk_overlap, 1), stride)
        for number, start in enumerate(starts):
            window = offsets[start:start + config.chunk_tokens]
            text = doc.text[window[0][0]:window[-1][1]] if window else doc.text
            chunks.append(Chunk(f"{doc_id}#{number}", doc_id, doc.title, text))
    return chunks


def _jsonl(path: Path) -> dict[str, Document]:
    from rerankforge.data_prep.beir import read_jsonl

    docs = {}
    for line, obj in read_jsonl(path):
        where = located(path, line)
        key = "_id" if "_id" in obj else "id"
        doc_id = obj.get(key)
        if doc_id is None or not isinstance(obj.get("text"), str):
            raise DataError(f"{where}: expected an object with '_id' (or 'id') and a string 'text', got keys "
                            f"{sorted(obj)}")
        if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int)):
            raise DataError(f"{where}: field {key!r} must be a string or integer, got {type(doc_id).__name__} "
                            f"{doc_id!r:.60}")
        doc_id = check_id(str(doc_id), key, where)
        if doc_id in docs:
            raise DataError(f"{where}: duplicate document id {doc_id!r}")
        title = obj.get("title") or ""
        if not isinstance(title, str):
            raise DataError(f"{where}: expected 'title' to be a string, got {type(title).__name__}")
        docs[doc_id] = Document(title=title, text=obj["text"])
    return docs


def _text_files(folder: Path) -> dict[str, Document]:
    """Each text file under `folder`, its id the path relative to the folder (whitespace, invisible characters and `%`
    percent-encoded: `notes/a%20b.md`, so an id is one printable token whatever the file is called). A symbolic link that leads out of the folder is
    refused: indexing it would serve whatever file it points at."""
    docs, root = {}, folder.resolve()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES):
        if not file.resolve().is_relative_to(root):
            raise DataError(f"--docs {folder}: {file.relative_to(folder)} is a link to {file.resolve()}, outside "
                            f"the folder; expected the folder's own files (copy the file in, or remove the link)")
        data = file.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            line, column = data.count(b"\n", 0, error.start) + 1, error.start - data.rfind(b"\n", 0, error.start)
            raise DataError(f"{located(file, line)}: expected UTF-8 text, got undecodable bytes ({error.reason} "
                            f"at byte {column} of the line)") from None
        title = next((line.lstrip("#").strip() for line in text.splitlines() if line.startswith("# ")), file.stem)
        docs[_file_id(file.relative_to(folder))] = Document(title=title, text=text)
    return docs


def _file_id(relative: Path) -> str:
    return "".join(ch if ch.isprintable() and not ch.isspace() and ch != "%" else quote(ch)
                   for ch in relative.as_posix())
