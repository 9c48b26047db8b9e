"""Knowledge bases: ingestion, chunking, embedders, hybrid pgvector + full-text retrieval."""
