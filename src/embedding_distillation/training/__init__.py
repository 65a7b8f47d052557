"""Training a student on stored teacher embeddings."""
