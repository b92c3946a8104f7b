"""shopops: the AI/ML/Data/Agent-Ops platform of an ecommerce company."""

__version__ = "0.1.0"
