"""``experimenthub demo``: the whole hub on the embedded default, with no servers.

It generates a plant process and a load series, trains a fault-detection and a forecasting experiment,
streams the process's test data through the local queue and the stream scorer, prints a results table,
writes one HTML report with the figures, and prints how to open the MLflow UI on the embedded store.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from framework.config import default_config
from framework.ExperimentHub import ExperimentHub
from framework.records import decode_records
from framework.streaming import input_queue, prediction_queue

__all__ = ["free_port", "run_demo"]

FAULT_EXPERIMENT = "demo_pump_station"
SERIES_EXPERIMENT = "demo_feeder_load"
FAULT_SPEC = {
    # the generator's fault episodes end abruptly: a shorter EWMA memory (0.3 instead of 0.1) keeps the alarm
    # from lingering a few rows after each episode (bench/plant.py has the trade-off: 0.1 holds compensated faults)
    "model": {"name": "var_innovation", "params": {"ewma": 0.3}},
    "timestamp": "timestamp",
    "label": "fault",
    "threshold": {"false_alarm_rate": 0.01, "persistence": {"k": 3, "n": 5}},
}
SERIES_SPEC = {
    "timestamp": "timestamp",
    "target": "load_mw",
    "horizon": 48,
    "model": {"name": "auto"},
    "label": "is_anomaly",
}
MESSAGE_RECORDS = 100


def run_demo(console: Console) -> dict[str, Any]:
    """Run the demo and return its results (also printed)."""
    from framework.datasets.process import make_process
    from framework.datasets.series import make_series

    started = time.perf_counter()
    config = default_config()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        steps = progress.add_task("starting the embedded hub", total=6)
        hub = ExperimentHub.from_hub_config(config)
        with hub:
            progress.update(steps, advance=1, description="generating the plant process and the load series")
            train, test = make_process(n_normal=6000, n_test=4000, seed=7)
            series = make_series(n=24 * 7 * 8, seed=7).rename(columns={"value": "load_mw"})
            history, live = series.iloc[: -24 * 7], series.iloc[-24 * 7 :]

            progress.update(steps, advance=1, description=f"training {FAULT_EXPERIMENT} (fault detection, PCA)")
            hub.create_experiment(FAULT_EXPERIMENT, "fault_detection", FAULT_SPEC, exist_ok=True)
            fault_run = hub.train(FAULT_EXPERIMENT, train)

            progress.update(steps, advance=1, description=f"training {SERIES_EXPERIMENT} (forecasting, auto)")
            hub.create_experiment(SERIES_EXPERIMENT, "time_series", SERIES_SPEC, exist_ok=True)
            series_run = hub.train(SERIES_EXPERIMENT, history)

            progress.update(steps, advance=1, description="streaming the test data through the local queue")
            stream = _stream(hub, test, progress)

            progress.update(steps, advance=1, description="evaluating and writing the report")
            fault_model = hub.load(FAULT_EXPERIMENT, version=fault_run.version)
            fault_metrics = fault_model.evaluate(test)
            series_model = hub.load(SERIES_EXPERIMENT, version=series_run.version)
            series_metrics = series_model.evaluate(live)
            report = _report(hub, config, fault_model, test, series_model, live, fault_metrics, series_run)
            progress.update(steps, advance=1, description="done")
    results = {
        "fault_detection": {"version": fault_run.version, "champion_moved": fault_run.promoted, **fault_metrics},
        "time_series": {
            "version": series_run.version,
            "champion_moved": series_run.promoted,
            "holdout": series_run.metrics,
            "live_week": series_metrics,
        },
        "stream": stream,
        "report": str(report),
        "seconds": round(time.perf_counter() - started, 1),
    }
    _print_results(console, results, config)
    return results


def _stream(hub: ExperimentHub, test: pd.DataFrame, progress: Progress) -> dict[str, Any]:
    """Publish the test data (plus one malformed message), score it with the stream scorer, read it back."""
    from framework.plugins.datastream import DEAD_LETTER_SUFFIX, OutgoingMessage

    stream = hub.get_plugin("datastream")
    for queue in (input_queue(FAULT_EXPERIMENT), prediction_queue(FAULT_EXPERIMENT)):
        stream.create_queue(queue)
        stream.flush_queue(queue)
        stream.flush_queue(queue + DEAD_LETTER_SUFFIX)
    records = test.drop(columns=["fault", "fault_type"])
    ids = hub.publish_records(FAULT_EXPERIMENT, records, batch_size=MESSAGE_RECORDS)

    stream.publish(
        input_queue(FAULT_EXPERIMENT),
        [OutgoingMessage(b'{"records": [{"s01": "broken"}]}', message_id="demo-bad-message")],
    )
    stop = threading.Event()
    scorer_stats: dict[str, Any] = {}

    def score() -> None:
        scorer_stats["stats"] = hub.stream(FAULT_EXPERIMENT, stop, batch_size=20, batch_timeout_ms=100)

    worker = threading.Thread(target=score, name="demo-scorer")
    task = progress.add_task("  predictions received", total=len(ids))
    worker.start()
    started = time.perf_counter()
    seen: dict[str, pd.DataFrame] = {}
    deadline = time.monotonic() + 120
    dead_letter = input_queue(FAULT_EXPERIMENT) + DEAD_LETTER_SUFFIX

    def pending() -> bool:  # predictions still missing, or the malformed message not yet dead-lettered
        return len(seen) < len(ids) or stream.queue_depth(dead_letter) < 1

    while pending() and time.monotonic() < deadline:
        deliveries = stream.pull_data(prediction_queue(FAULT_EXPERIMENT), max_messages=200, timeout=0.5)
        for delivery in deliveries:
            message_id, frame = decode_records(delivery.body)
            seen[message_id] = frame  # at-least-once delivery: de-duplicate by input id
        stream.ack(deliveries)
        progress.update(task, completed=len(seen))
    elapsed = time.perf_counter() - started
    stop.set()
    worker.join(timeout=30)
    stats = scorer_stats.get("stats")
    scored = pd.concat(seen.values(), ignore_index=True) if seen else pd.DataFrame()
    return {
        "messages": len(ids),
        "records_scored": len(scored),
        "records_per_s": round(len(scored) / max(elapsed, 1e-9)),
        "dead_lettered": stats.dead_lettered if stats else 0,
        "alarms": int(scored["is_anomaly"].sum()) if len(scored) else 0,
        "missing_predictions": len(ids) - len(seen),
    }


def _report(
    hub: ExperimentHub,
    config: Any,
    fault_model: Any,
    test: pd.DataFrame,
    series_model: Any,
    live: pd.DataFrame,
    fault_metrics: dict[str, float],
    series_run: Any,
) -> Path:
    from framework.report import write_report

    home = Path(config.global_.state_dir)
    tables = {
        "Fault detection (test stretch)": [{"metric": k, "value": v} for k, v in fault_metrics.items()],
        "Forecast (holdout)": [{"metric": k, "value": v} for k, v in series_run.metrics.items()],
    }
    sections = {
        f"{FAULT_EXPERIMENT}: fault detection": fault_model.figures(test),
        f"{SERIES_EXPERIMENT}: forecasting": series_model.figures(live),
    }
    return write_report(home / "reports" / "demo-report.html", "ExperimentHub demo", sections, tables)


def _print_results(console: Console, results: dict[str, Any], config: Any) -> None:
    fault, series, stream = results["fault_detection"], results["time_series"], results["stream"]
    table = Table(title="ExperimentHub demo: results")
    table.add_column("experiment")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        (FAULT_EXPERIMENT, "detection rate (fault episodes)", fault.get("detection_rate")),
        (FAULT_EXPERIMENT, "false-alarm rate (normal rows)", fault.get("false_alarm_rate")),
        (FAULT_EXPERIMENT, "mean detection delay (s)", fault.get("mean_detection_delay_s")),
        (FAULT_EXPERIMENT, "ROC-AUC", fault.get("roc_auc")),
        (SERIES_EXPERIMENT, "forecast MASE (48 h holdout)", series["holdout"].get("mase")),
        (SERIES_EXPERIMENT, "MASE relative to seasonal naive", series["holdout"].get("relative_mase")),
        (SERIES_EXPERIMENT, "interval coverage (holdout, 95% nominal)", series["holdout"].get("coverage")),
        (SERIES_EXPERIMENT, "anomaly F1 (live week)", series["live_week"].get("f1")),
        ("stream", "records scored", stream["records_scored"]),
        ("stream", "records/s end to end", stream["records_per_s"]),
        ("stream", "dead-lettered messages", stream["dead_lettered"]),
        ("stream", "lost messages", stream["missing_predictions"]),
    ]
    for experiment, metric, value in rows:
        table.add_row(
            experiment, metric, "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        )
    console.print(table)
    uri = config.plugins.mlops.config["mlflow_uri"]
    console.print(f"[bold]Report:[/] {results['report']}")
    port = free_port()
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    console.print(f"[bold]MLflow UI[/] (then open http://127.0.0.1:{port}):")
    console.print(
        f"{mlflow_exe} ui --backend-store-uri {uri} --port {port}", soft_wrap=True, markup=False, highlight=False
    )
    console.print(f"finished in {results['seconds']} s")


def free_port(preferred: int = 5000) -> int:
    """``preferred`` when nothing listens there, else a port the OS says is free (for the MLflow UI command)."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free TCP port")  # unreachable in practice: port 0 always binds


def results_json(results: dict[str, Any]) -> str:
    return json.dumps(results, default=str, indent=2)
