"""Fraud: a gradient-boosted model on point-in-time features, scored at checkout with reasons."""
