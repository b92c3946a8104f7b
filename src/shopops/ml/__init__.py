"""MLOps: the feature store, experiment tracking and model registry, training, promotion, serving."""
