"""The shared ecommerce model (regions, currencies, ...): pure Python, no I/O."""
