"""First-stage data: collections, retrievers, hard-negative mining."""
