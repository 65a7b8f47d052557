"""The project's pipelines: ``teacher_embeddings`` and ``distillation``."""
