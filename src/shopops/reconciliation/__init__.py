"""Cross-region reconciliation of orders, payment-provider records and the ledger."""
