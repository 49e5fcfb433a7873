"""Publishing a trained reranker: its model card (card), the datasets' and base model's licences and Hub ids (provenance), the upload to the Hugging Face Hub (hub)."""
