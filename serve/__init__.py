"""Serving: the two-stage pipeline (retrieve -> rerank -> generate), its index and the HTTP API."""
