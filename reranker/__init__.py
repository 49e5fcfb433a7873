"""The reranker as an artefact: its folder (save, load, LoRA adapters, rerankforge.json), pair packing,
scoring and score fusion -- what train, eval and serve all use."""
