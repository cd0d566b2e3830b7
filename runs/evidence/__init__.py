"""Evidence: configuration changes in the ledger, signed chain checkpoints, and
evidence packs an auditor verifies offline (docs/evidence.md).

`runs.evidence.verify` imports nothing but the standard library and
`cryptography`, so this package's `__init__` imports nothing either.
"""
