"""The simulated company: regional OLTP databases streaming Debezium change events, with the
company's pains injected on purpose and a ground truth to score every engine against.

Entry point: :func:`shopops.simulator.service.run_simulation`. See docs/simulator.md.
"""
