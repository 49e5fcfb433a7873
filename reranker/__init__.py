"""The reranker as an artefact: its exported backends (ONNX fp32/int8) and how they are made."""
