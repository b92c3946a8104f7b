"""Governance: authentication (API keys), authorization as code (Cedar), personal-data masking and
residency, secrets, and the tamper-evident audit trail."""
