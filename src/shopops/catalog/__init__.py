"""The data catalog and lineage: every dataset with its owner, domain, SLA, retention, residency and
the sensitivity of each column; which job read and wrote what, run by run, as OpenLineage events."""
