"""The reranker as an artefact: its folder (save, load, LoRA adapters, rerankforge.json), pair packing,
scoring, score fusion and exported backends (ONNX fp32/int8) -- what train, eval and serve all use."""
