"""The knowledge base: ingestion of docs and runbooks, hybrid (dense + BM25) retrieval with citations."""
