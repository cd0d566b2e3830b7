"""Test cases from runs: a run's inputs and per-item outcomes kept as expected
results, and a suite per automation that re-runs them against a chosen version.

`models` (TestCase, TestCaseRun), `services` (add, run the suite, evaluate)."""
