"""Command-line entry point (Typer)."""
