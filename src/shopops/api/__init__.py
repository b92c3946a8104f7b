"""HTTP entry point: the FastAPI app factory and its routers."""
