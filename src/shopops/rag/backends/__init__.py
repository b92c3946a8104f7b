"""Knowledge store backends: Qdrant in local mode (default) or a Qdrant server."""
