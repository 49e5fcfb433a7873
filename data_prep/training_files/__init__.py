"""Training files: the one file format between mining and training, in every layout train reads.

- writing.py: what `rerankforge mine` (and the warm start, the demo, score-teacher) writes -- the rerankforge
  and sentence-transformers layouts of n-tuple, triplet and labeled-pair files, JSONL or parquet;
- reading.py: any layout train accepts, read as (query, positive, negatives) rows (`read_training_rows`)."""

from .reading import TEXT_ID_PREFIX, read_training_rows, text_query_id

__all__ = ["TEXT_ID_PREFIX", "read_training_rows", "text_query_id"]
