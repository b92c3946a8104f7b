"""Training pipelines: reproducible from a seed, scored against the simulator's truth, logged to MLflow."""
