"""Data contracts (Open Data Contract Standard) and their checks on micro-batches and whole tables."""
