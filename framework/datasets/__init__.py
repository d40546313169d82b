"""Seeded synthetic data for the README, tests, benchmarks and the demo (nothing is copied from elsewhere).

- ``framework.datasets.process.make_process``: a multivariate plant process (sensors ``s01..sNN`` driven by a few
  correlated latent factors) as ``(train, test)``; ``test`` continues in time and carries labelled fault episodes
  (``fault`` 0/1, ``fault_type`` step/drift/variance/stuck, ``fault_sensor``).
- ``framework.datasets.series.make_series``: an hourly seasonal series (``timestamp``, ``value``, ``is_anomaly``)
  with labelled spikes and a level shift in its second half.
- ``framework.datasets.samples.write_samples``: the README's files (``normal.csv``, ``live.csv``, ``load.csv``),
  also written by ``experimenthub sample-data DIR``.

>>> from framework.datasets.process import make_process
>>> train, test = make_process(n_normal=2000, n_test=1000, seed=0)
"""
