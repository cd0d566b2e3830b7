"""Operations: health and readiness probes, Prometheus metrics, SLA alerts, logs.

A host project includes `runs.ops.urls` (at its root: `/healthz`, `/readyz`,
`/metrics`). See docs/operations.md.
"""
