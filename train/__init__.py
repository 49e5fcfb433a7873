"""Cross-encoder training (grows with the train issue)."""
