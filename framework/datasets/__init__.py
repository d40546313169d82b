"""Seeded synthetic data for tests, benchmarks and the demo (nothing is copied from elsewhere).

- ``framework.datasets.process``: a multivariate plant process with labelled faults.
- ``framework.datasets.series``: a seasonal series with labelled anomalies.
"""
