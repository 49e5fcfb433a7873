"""Thin adapters so a rerankforge reranker drops into LangChain and LlamaIndex pipelines.

    from rerankforge.serve.integrations import langchain_compressor, llamaindex_postprocessor
    compressor = langchain_compressor("outputs/scifact/reranker-minilm-full", top_n=5)
    # ContextualCompressionRetriever(base_compressor=compressor, base_retriever=...)
    postprocessor = llamaindex_postprocessor("outputs/scifact/reranker-minilm-full", top_n=5)
    # index.as_query_engine(node_postprocessors=[postprocessor])

Either takes a model reference (folder, Hub id, LoRA adapter) or a loaded `Reranker`. Install the
frameworks with `pip install rerankforge[langchain]` / `rerankforge[llamaindex]`."""

from __future__ import annotations

from rerankforge.reranker.calibration import relevance


def _scorer(reranker, **load_options):
    if isinstance(reranker, str):
        from rerankforge.reranker.scoring import Reranker

        return Reranker.load(reranker, **load_options)
    return reranker


def langchain_compressor(reranker, top_n: int = 5, **load_options):
    """A LangChain `BaseDocumentCompressor`: keeps the `top_n` documents by reranker score and puts the
    score (0..1) in each document's metadata as `relevance_score`."""
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict

    scorer = _scorer(reranker, **load_options)

    class RerankforgeCompressor(BaseDocumentCompressor):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        top_n: int = 5

        def compress_documents(self, documents, query, callbacks=None):
            documents = list(documents)
            if not documents:
                return []
            scores = scorer.score([(query, d.page_content) for d in documents])
            order = sorted(range(len(documents)), key=lambda i: -scores[i])[:self.top_n]
            probabilities = [float(p) for p in relevance(scorer, scores)]
            return [Document(page_content=documents[i].page_content,
                             metadata={**documents[i].metadata, "relevance_score": probabilities[i]})
                    for i in order]

    return RerankforgeCompressor(top_n=top_n)


def llamaindex_postprocessor(reranker, top_n: int = 5, **load_options):
    """A LlamaIndex node postprocessor: reorders the retrieved nodes by reranker score (the node's new
    score, 0..1) and keeps the `top_n`."""
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore
    from pydantic import ConfigDict

    scorer = _scorer(reranker, **load_options)

    class RerankforgePostprocessor(BaseNodePostprocessor):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        top_n: int = 5

        @classmethod
        def class_name(cls) -> str:
            return "RerankforgePostprocessor"

        def _postprocess_nodes(self, nodes, query_bundle=None):
            if query_bundle is None:
                raise ValueError("RerankforgePostprocessor needs the query (query_bundle)")
            if not nodes:
                return []
            texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
            scores = scorer.score([(query_bundle.query_str, t) for t in texts])
            order = sorted(range(len(nodes)), key=lambda i: -scores[i])[:self.top_n]
            probabilities = [float(p) for p in relevance(scorer, scores)]
            return [NodeWithScore(node=nodes[i].node, score=probabilities[i]) for i in order]

    return RerankforgePostprocessor(top_n=top_n)
