"""Promotion: gates, the Cedar policy decision, the champion alias, the audit record, model cards."""
