"""Metric logging: MLflowPlugin vs raw ``MlflowClient.log_batch`` vs a per-call ``log_metric`` loop, in the same run.

Each round logs 1000 metrics (one step) to the same MLflow run three ways:

* ``plugin``: ``MLflowPlugin.log_metrics(run_id, {name: value, ...}, step)`` (a dict in, batched to the store's limit);
* ``raw log_batch`` (the reference): build 1000 ``Metric`` entities and call ``MlflowClient.log_batch`` once;
* ``per-call``: ``MlflowClient.log_metric`` once per value, for context (what the plugin avoids).

Backends: the embedded SQLite store, and a tracking server this script starts on a free port (SQLite backend by
default, ``--server-backend postgres`` for a throwaway PostgreSQL database). Figures are medians of ``--repeats``
rounds; plugin/raw is the median of per-round ratios (the per-call loop runs ``--per-call-repeats`` times; it is slow).

    .venv/bin/python bench/mlops_logging.py [--repeats 31] [--per-call-repeats 1] [--server-backend sqlite|postgres]

One ``RESULT mlops_logging plugin_vs_raw_log_batch=<ratio> backend=<name>`` line per backend ends the output.
Target: the plugin costs at most 1.2x raw ``log_batch``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from framework.devservices import throwaway_mlflow_server
from framework.plugins.mlflow_plugin import MLflowPlugin

METRICS = 1000


def timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(uri: str, repeats: int, per_call_repeats: int) -> dict[str, float]:
    """Median seconds per 1000 metrics for each way, all in one run of one experiment, and the paired ratio.

    ``plugin/raw`` is the median over rounds of (plugin time / raw time in the same round): the store's latency
    drifts a lot between rounds (a server on a busy machine), and pairing cancels most of that drift.
    """
    plugin = MLflowPlugin(mlflow_uri=uri)
    plugin.initialize()
    client = MlflowClient(uri)
    names = [f"metric_{i:04d}" for i in range(METRICS)]
    step = 0

    def values() -> dict[str, float]:
        return {name: step + i / METRICS for i, name in enumerate(names)}

    def via_plugin() -> None:
        plugin.log_metrics(run_id, values(), step=step)

    def via_raw_batch() -> None:
        timestamp = int(time.time() * 1000)
        batch = [Metric(k, v, timestamp, step) for k, v in values().items()]
        client.log_batch(run_id, metrics=batch, synchronous=True)

    def via_per_call() -> None:
        for key, value in values().items():
            client.log_metric(run_id, key, value, step=step, synchronous=True)

    samples: dict[str, list[float]] = {"plugin": [], "raw log_batch": [], "per-call log_metric": []}
    with plugin.run(f"bench-{uuid.uuid4().hex[:8]}") as run_id:
        for way in (via_plugin, via_raw_batch):  # warm-up
            step += 1
            way()
        ways = [("plugin", via_plugin), ("raw log_batch", via_raw_batch)]
        for round_ in range(repeats):  # interleaved, order alternating, so drift in the store hits both alike
            for name, way in ways if round_ % 2 == 0 else ways[::-1]:
                step += 1
                samples[name].append(timed(way))
        for _ in range(per_call_repeats):
            step += 1
            samples["per-call log_metric"].append(timed(via_per_call))
    plugin.shutdown()
    figures = {name: statistics.median(times) for name, times in samples.items()}
    pairs = zip(samples["plugin"], samples["raw log_batch"], strict=True)
    figures["plugin/raw"] = statistics.median(p / r for p, r in pairs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--per-call-repeats", type=int, default=1)
    parser.add_argument("--server-backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ehub-bench-mlops-") as tmp:
        folder = Path(tmp)
        results["sqlite"] = measure(
            f"sqlite:///{folder / 'embedded' / 'mlflow.db'}", args.repeats, args.per_call_repeats
        )
        with throwaway_mlflow_server(folder / "server", args.server_backend, timeout=90) as server:
            results[f"server({args.server_backend})"] = measure(server.uri, args.repeats, args.per_call_repeats)

    print(f"\n{METRICS} metrics per call, median seconds; ratios against raw MlflowClient.log_batch")
    print(f"{'backend':<18}{'plugin s':>10}{'raw s':>10}{'per-call s':>12}{'plugin/raw':>12}{'per-call/raw':>14}")
    for backend, figures in results.items():
        raw = figures["raw log_batch"]
        print(
            f"{backend:<18}{figures['plugin']:>10.4f}{raw:>10.4f}{figures['per-call log_metric']:>12.3f}"
            f"{figures['plugin/raw']:>12.2f}{figures['per-call log_metric'] / raw:>14.1f}"
        )
    for backend, figures in results.items():
        print(f"RESULT mlops_logging plugin_vs_raw_log_batch={figures['plugin/raw']:.3f} backend={backend}")


if __name__ == "__main__":
    main()
