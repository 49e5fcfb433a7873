"""Thin adapters so a rerankforge reranker drops into LangChain and LlamaIndex pipelines.

    from rerankforge.serve.integrations import langchain_compressor, llamaindex_postprocessor
    compressor = langchain_compressor("outputs/scifact/reranker-minilm-full", top_n=5)
    # ContextualCompressionRetriever(base_compressor=compressor, base_retriever=...)
    postprocessor = llamaindex_postprocessor("outputs/scifact/reranker-minilm-full", top_n=5)
    # index.as_query_engine(node_postprocessors=[postprocessor])

Either takes a model reference (folder, Hub id, LoRA adapter) or a loaded `Reranker`. Install the
frameworks with `pip install rerankforge[langchain]` / `rerankforge[llamaindex]`.

They rank by the reranker alone unless `documents_ranked=True` says the documents (nodes) come in the
retriever's order, best first, as a retriever hands them over: then by the model's served ranking, its score
weighed against that order (fitted on its dev split; `Reranker.order`). The ranking used is in each document's
metadata (`ranking`) and in the node postprocessor's `last_ranking`."""

from __future__ import annotations

from rerankforge.reranker.calibration import relevance


def _scorer(reranker, **load_options):
    if isinstance(reranker, str):
        from rerankforge.reranker.scoring import Reranker

        return Reranker.load(reranker, **load_options)
    return reranker


def langchain_compressor(reranker, top_n: int = 5, documents_ranked: bool = False, **load_options):
    """A LangChain `BaseDocumentCompressor`: keeps the `top_n` documents by reranker score (or, with
    `documents_ranked`, by the served ranking over their order) and puts the reranker's relevance (0..1) in
    each document's metadata as `relevance_score`, the ranking used as `ranking`."""
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict

    scorer = _scorer(reranker, **load_options)

    class RerankforgeCompressor(BaseDocumentCompressor):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        top_n: int = 5
        documents_ranked: bool = False

        def compress_documents(self, documents, query, callbacks=None):
            documents = list(documents)
            if not documents:
                return []
            texts = [d.page_content for d in documents]
            scores = scorer.score([(query, t) for t in texts])
            order, ranking = scorer.order(scores, self.documents_ranked, query, texts)
            probabilities = [float(p) for p in relevance(scorer, scores)]
            return [Document(page_content=documents[i].page_content,
                             metadata={**documents[i].metadata, "relevance_score": probabilities[i],
                                       "ranking": ranking})
                    for i in order[:self.top_n]]

    return RerankforgeCompressor(top_n=top_n, documents_ranked=documents_ranked)


def llamaindex_postprocessor(reranker, top_n: int = 5, documents_ranked: bool = False, **load_options):
    """A LlamaIndex node postprocessor: reorders the retrieved nodes by reranker score (or, with
    `documents_ranked`, by the served ranking over their order) and keeps the `top_n`; each node's new score is
    the reranker's relevance (0..1)."""
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore
    from pydantic import ConfigDict

    scorer = _scorer(reranker, **load_options)

    class RerankforgePostprocessor(BaseNodePostprocessor):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        top_n: int = 5
        documents_ranked: bool = False
        last_ranking: str | None = None
        """The ranking the last call used: 'reranker' or 'served (...)'."""

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
            order, self.last_ranking = scorer.order(scores, self.documents_ranked, query_bundle.query_str, texts)
            probabilities = [float(p) for p in relevance(scorer, scores)]
            return [NodeWithScore(node=nodes[i].node, score=probabilities[i]) for i in order[:self.top_n]]

    return RerankforgePostprocessor(top_n=top_n, documents_ranked=documents_ranked)
