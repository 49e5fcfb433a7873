"""Teachers for distillation: a reranker's scores of the training groups, cached (teacher); `rerankforge score-teacher` (score_teacher); LLMs as relevance judges (judges)."""
