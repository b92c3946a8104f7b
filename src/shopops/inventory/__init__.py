"""Inventory reservations: hold stock for a checkout, then confirm, release or let it expire,
without ever selling a unit that is not there. See docs/inventory.md."""
