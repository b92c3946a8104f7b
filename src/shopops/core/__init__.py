"""Cross-cutting foundations: settings, backend registry, errors, logging, money. No business logic."""
