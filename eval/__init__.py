"""Evaluation: IR metrics on runs and reranked runs."""
