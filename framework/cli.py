"""The ``experimenthub`` command line (Typer + Rich). A thin front door: parse, call the hub, render.

Heavy libraries are imported inside commands so ``experimenthub --help`` starts fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app", "main"]

app = typer.Typer(
    help="ExperimentHub: train, track, serve and retrain process-monitoring experiments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")
experiments_app = typer.Typer(help="List and inspect experiments.", no_args_is_help=True)
app.add_typer(experiments_app, name="experiments")

EMBEDDED_ENV_NAME = "EXPERIMENTHUB_EMBEDDED"  # framework.config.EMBEDDED_ENV (not imported: --help stays fast)
EMBEDDED_FLAG = "1 (--embedded)"  # the value --embedded sets, so a conflict with --config can be told apart
console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="hub_config.yaml (default: ./hub_config.yaml, else the embedded default; see --embedded)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error (no traceback) and return the exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def open_hub(config: Path | None, *, strict: bool = True) -> Any:
    """Build the hub from ``config`` (logging set from its ``global.log_level``), saying on stderr which config
    it loaded; hub errors become a one-line message (naming the config file) and exit code 2."""
    import click

    if config is not None and os.environ.get(EMBEDDED_ENV_NAME) == EMBEDDED_FLAG:
        raise fail("--embedded and --config exclude each other: pick one", code=2)
    check_files(config=config)
    from framework.config import config_source, configure_logging, load_config
    from framework.errors import HubError
    from framework.ExperimentHub import ExperimentHub

    source = config_source(config)
    announce_config(config)
    try:
        hub_config = load_config(source)
        context = click.get_current_context(silent=True)
        configure_logging(hub_config, verbose=bool(context and context.find_root().params.get("verbose")))
        return ExperimentHub.from_hub_config(hub_config, strict=strict)
    except HubError as exc:
        raise fail(service_error(config, exc), code=2) from None


def announce_config(config: Path | None) -> None:
    """One stderr line saying which config this command loads."""
    from framework.config import config_source, state_dir

    source = config_source(config)
    where = f"config {source}" if source is not None else f"embedded default (no servers; state in {state_dir()})"
    errors.print(f"experimenthub: {where}", highlight=False, soft_wrap=True, markup=False)


def service_error(config: Path | None, exc: Exception) -> str:
    """A hub error as one line; a plugin error names the config file it came from and how to avoid the servers."""
    from framework.config import config_source
    from framework.errors import PluginError

    if not isinstance(exc, PluginError):
        return str(exc)
    source = config_source(config)
    hint = " (start that service, or use --embedded for the no-server default)" if source is not None else ""
    return f"{source or 'embedded default'}: {exc}{hint}"


def check_files(**options: Path | None) -> None:
    """Fail fast (before MLflow or pandas is imported) when a file option names no file: ``--data missing.csv``."""
    for option, path in options.items():
        if path is not None and not path.is_file():
            what = "not a file" if path.exists() else "file not found"
            raise fail(f"--{option}: {what}: {path}", code=2)


def _version_callback(show: bool) -> None:
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"experimenthub {version('experimenthub')}")
        except PackageNotFoundError:
            typer.echo("experimenthub (not installed)")
        raise typer.Exit()


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at debug level")] = False,
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help=f"ignore ./hub_config.yaml and use the embedded default (no servers); same as {EMBEDDED_ENV_NAME}=1",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if embedded:
        os.environ[EMBEDDED_ENV_NAME] = EMBEDDED_FLAG  # child processes (worker, stream) inherit it


@config_app.command("check")
def config_check(
    path: Annotated[Path, typer.Argument(help="the hub_config.yaml to check")],
    production: Annotated[
        bool, typer.Option("--production", help="check as if global.environment: production")
    ] = False,
) -> None:
    """Validate a config file and every enabled plugin's type and config (connects to nothing); exit 0 when it is
    valid, 1 with one line per problem (file:line: field: reason) otherwise."""
    from framework.config import HubConfig, load_yaml_model
    from framework.errors import ConfigError
    from framework.plugins.registry import check_config

    try:
        config = load_yaml_model(HubConfig, path)
        if production:
            config.global_ = config.global_.model_copy(update={"environment": "production"})
        unsafe = check_config(config, warn=False)
    except ConfigError as exc:
        for problem in exc.problems:
            errors.print(f"[bold red]✗[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for problem in unsafe:
        errors.print(f"[yellow]![/] {problem} (production would refuse it)", highlight=False, soft_wrap=True)
    enabled = ", ".join(f"{t}={e.type}" for t, e in config.plugins.enabled().items()) or "none"
    types = ", ".join(config.experiment_types()) or "none"
    mode = config.global_.environment
    console.print(f"[green]✓[/] {path} is valid ({mode}): plugins {enabled}; experiment types {types}", highlight=False)


@app.command("plugins")
def plugins_command(
    config_help: Annotated[
        str | None,
        typer.Option("--config-help", metavar="TYPE|ALIAS", help="the config keys of a plugin type or implementation"),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """List plugin types and their implementations, entry points included; or the config keys of one."""
    from framework.plugins.registry import list_plugins

    if config_help is not None:
        show_config_help(config_help, json_out=json_out)
        return
    rows = list_plugins()
    if json_out:
        print_json(rows)
        return
    table = Table(title="ExperimentHub plugins")
    for column in ("type", "name", "target", "source"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["type"], row["name"], row["target"], row["source"])
    console.print(table)


def show_config_help(name: str, *, json_out: bool) -> None:
    """Print the accepted keys of ``name`` (a plugin type or implementation): type, default, description."""
    from framework.plugins.registry import config_help

    found = hub_call(config_help, name)
    if json_out:
        print_json([{"type": ptype, "name": alias, "keys": rows} for ptype, alias, rows in found])
        return
    for ptype, alias, rows in found:
        table = Table(title=f"{ptype}: {alias}")
        for column in ("key", "type", "default", "required", "secret", "description"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(row[c] for c in ("key", "type", "default", "required", "secret", "description")))
        console.print(table)


@app.command("health")
def health_command(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Check every plugin; exit 0 when all are healthy, 1 otherwise (a plugin that cannot start is unhealthy)."""
    hub = open_hub(config, strict=False)
    with hub:
        report = hub.check_plugin_health()
    if json_out:
        print_json(report)
    else:
        render_health(report)
    if not report or not all(entry["healthy"] for entry in report.values()):
        raise typer.Exit(1)


def hub_call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a hub method; a hub error becomes a one-line message and exit code 1."""
    from framework.errors import HubError

    try:
        return function(*args, **kwargs)
    except HubError as exc:
        raise fail(str(exc)) from None


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no wrapping or colour), for scripts."""
    typer.echo(json.dumps(data, default=str, indent=2))


def cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits, timestamps as ISO-8601 with their zone (``Z`` for UTC)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "isoformat") and hasattr(value, "tzinfo"):
        text = value.isoformat()
        return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
    return str(value)


def metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("metric", overflow="fold")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


@app.command("train")
def train_command(
    name: Annotated[str, typer.Argument(help="experiment name")],
    data: Annotated[Path, typer.Option("--data", "-d", help="CSV, Parquet or Excel file")],
    type_: Annotated[str | None, typer.Option("--type", "-t", help="experiment type (creates the experiment)")] = None,
    spec: Annotated[Path | None, typer.Option("--spec", "-s", help="YAML spec file (with --type)")] = None,
    config: ConfigOption = None,
    wait: Annotated[bool, typer.Option(help="wait for the job and print the result")] = True,
    json_out: JsonOption = False,
) -> None:
    """Train a new model version (creating the experiment from --type/--spec when given)."""
    check_files(data=data, spec=spec)
    with open_hub(config) as hub:
        if type_ is not None:
            spec_model = hub_call(hub.experiment_class, type_).spec_model
            spec_data = load_spec_file(spec, spec_model) if spec else {}
            hub_call(hub.create_experiment, name, type_, spec_data, exist_ok=True)
        job_id = hub_call(hub.submit_training, name, data)
        follow_job(hub, name, job_id, wait=wait, json_out=json_out)


@app.command("retrain")
def retrain_command(
    name: Annotated[str, typer.Argument(help="experiment name")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="new rows (CSV/Parquet/Excel)")] = None,
    config: ConfigOption = None,
    wait: Annotated[bool, typer.Option(help="wait for the job and print the result")] = True,
    json_out: JsonOption = False,
) -> None:
    """A new version from the newest training data plus --data, cut to the spec's retrain window."""
    check_files(data=data)
    with open_hub(config) as hub:
        job_id = hub_call(hub.submit_retrain, name, data)
        follow_job(hub, name, job_id, wait=wait, json_out=json_out)


def follow_job(hub: Any, name: str, job_id: str, *, wait: bool, json_out: bool) -> None:
    """Show a spinner until the job ends, then its result; exit 1 if it failed."""
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not wait:
        print_json({"job_id": job_id}) if json_out else console.print(f"queued job {job_id}")
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=errors, transient=True, disable=json_out) as progress:
        task = progress.add_task(f"training {name} (job {job_id[:8]})", total=None)
        info = hub_call(hub.job, job_id)
        while info.state in ("queued", "running"):
            progress.update(task, description=f"training {name}: {info.state}")
            time.sleep(0.25)
            info = hub_call(hub.job, job_id)
    if json_out:
        print_json(info.to_dict())
    elif info.state == "succeeded":
        result = info.result or {}
        moved = "moved" if result["promoted"] else "unchanged (the new version did not validate)"
        console.print(f"[green]✓[/] {name}: version {result['version']} (run {result['run_id']}), champion {moved}")
        console.print(metrics_table("metrics", result["metrics"]))
    if info.state != "succeeded":
        raise fail(
            f"job {job_id} {info.state}: {info.error}. {name} keeps the versions it had (its failed run is listed "
            f"by `experimenthub jobs -e {name}`); fix the cause and run the same command again"
        )


def load_spec_file(path: Path, spec_model: Any) -> dict[str, Any]:
    """Read and validate a YAML spec; errors name the file, line and field."""
    from framework.config import load_yaml_model

    spec = hub_call(load_yaml_model, spec_model, path)
    return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)


@app.command("predict")
def predict_command(
    name: Annotated[str, typer.Argument(help="experiment name")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="records to score (CSV/Parquet/Excel)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write predictions (.csv or .parquet)")] = None,
    version: Annotated[int | None, typer.Option(help="model version (default: champion)")] = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Score records with the served model (or forecast ahead when no --data is given)."""
    check_files(data=data)
    with open_hub(config) as hub:
        result = hub_call(hub.predict, name, data, version=version)
    served = result.attrs
    role = "the champion" if served.get("champion") else "not the champion"
    errors.print(f"{name}: scored by version {served.get('model_version')} ({role})", highlight=False, soft_wrap=True)
    if served.get("warning"):
        errors.print(f"[yellow]warning:[/] {served['warning']}", highlight=False, soft_wrap=True)
    if out is not None:
        if out.suffix == ".parquet":
            result.to_parquet(out, index=False)
        else:
            from framework.records import csv_safe

            csv_safe(result).to_csv(out, index=False)
        errors.print(f"wrote {len(result)} predictions to {out}")
    if json_out:
        typer.echo(result.to_json(orient="records", date_format="iso"))
    elif out is None:
        table = Table(title=f"{name}: {len(result)} predictions (first 20)")
        for column in result.columns:
            table.add_column(str(column), overflow="fold")
        for row in result.head(20).itertuples(index=False):
            table.add_row(*(cell(v) for v in row))
        console.print(table)


@app.command("evaluate")
def evaluate_command(
    name: Annotated[str, typer.Argument(help="experiment name")],
    data: Annotated[Path, typer.Option("--data", "-d", help="labelled rows (CSV/Parquet/Excel)")],
    version: Annotated[int | None, typer.Option(help="model version (default: champion)")] = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Detection or forecast metrics of the served model against the labels in --data."""
    check_files(data=data)
    with open_hub(config) as hub:
        metrics = hub_call(hub.evaluate, name, data, version=version)
    if json_out:
        print_json(metrics)
    else:
        console.print(metrics_table(f"{name}: evaluation on {data}", metrics))


@experiments_app.command("list")
def experiments_list(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Every experiment in the MLOps store."""
    with open_hub(config) as hub:
        infos = hub_call(hub.experiments)
    if json_out:
        print_json([i.to_dict() for i in infos])
        return
    table = Table(title="Experiments")
    for column in ("name", "type", "model", "champion"):
        table.add_column(column, overflow="fold")
    for info in infos:
        table.add_row(info.name, info.type, str(info.spec.get("model", {}).get("name", "")), str(info.champion or "-"))
    console.print(table)


@experiments_app.command("show")
def experiments_show(name: str, config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """One experiment: its spec and model versions."""
    with open_hub(config) as hub:
        info = hub_call(hub.get_experiment, name)
        versions = hub_call(hub.versions, name)
    if json_out:
        print_json({**info.to_dict(), "versions": [v.__dict__ for v in versions]})
        return
    console.print(f"[bold]{info.name}[/] ({info.type}), champion: {info.champion or '-'}")
    print_json(info.spec)
    table = Table(title="Model versions")
    for column in ("version", "aliases", "run"):
        table.add_column(column, overflow="fold")
    for v in versions:
        table.add_row(str(v.version), ", ".join(v.aliases), str(v.run_id))
    console.print(table)


@app.command("promote")
def promote_command(name: str, version: int, config: ConfigOption = None) -> None:
    """Make VERSION the champion of NAME."""
    with open_hub(config) as hub:
        hub_call(hub.promote, name, version)
    console.print(f"[green]✓[/] {name}: version {version} is now the champion")


@app.command("jobs")
def jobs_command(
    job_id: Annotated[str | None, typer.Argument(help="a job id; without it, list recent trainings")] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="only this experiment")] = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """A job's state, or the recent trainings and jobs recorded in the store."""
    with open_hub(config) as hub:
        if job_id is None:
            rows = hub_call(hub.training_history, experiment)
        else:
            info = hub_call(hub.job, job_id)
    if job_id is None:
        if json_out:
            print_json(rows)
            return
        table = Table(title="Recent trainings")
        for column in ("experiment", "version", "status", "champion", "job", "run", "error"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row["experiment"],
                str(row["version"] or "-"),
                row["status"],
                "moved" if row["promoted"] else "-",
                row["job_id"] or "-",
                row["run_id"],
                row.get("error") or "",
            )
        console.print(table)
        return
    if json_out:
        print_json(info.to_dict())
    else:
        console.print(f"job {job_id}: {info.state}" + (f" ({info.error})" if info.error else ""))
    if info.state == "failed":
        raise typer.Exit(1)


def render_health(report: dict[str, dict[str, Any]]) -> None:
    table = Table(title="Plugin health")
    table.add_column("plugin")
    table.add_column("status")
    table.add_column("details", overflow="fold")
    for ptype, entry in report.items():
        status = "[green]healthy[/]" if entry["healthy"] else "[red]unhealthy[/]"
        details = ", ".join(f"{k}={v}" for k, v in entry["details"].items())
        table.add_row(ptype, status, details)
    console.print(table)


@app.command("worker")
def worker_command(
    config: Annotated[Path, typer.Option("--config", "-c", help="hub_config.yaml with the taskqueue plugin enabled")],
    concurrency: Annotated[int, typer.Option("--concurrency", "-n", min=1, help="worker processes")] = 2,
    loglevel: Annotated[str, typer.Option("--loglevel", help="Celery log level")] = "info",
) -> None:
    """Start a Celery worker that builds its own hub from the config and runs training jobs."""
    check_files(config=config)
    from framework.errors import HubError
    from framework.worker import run_worker

    announce_config(config)
    try:
        run_worker(config, concurrency=concurrency, loglevel=loglevel)
    except HubError as exc:
        raise fail(service_error(config, exc), code=2) from None


@app.command("serve")
def serve_command(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option("--host", help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port")] = 8000,
) -> None:
    """Serve the REST API (docs at /docs); set global.api_key or EXPERIMENTHUB_API_KEY to require a bearer token."""
    check_files(config=config)
    from framework.errors import HubError

    try:
        from framework.api.server import serve
    except ImportError as exc:
        raise fail(f"the REST API needs {exc.name!r}: pip install 'experimenthub[api]'") from None
    announce_config(config)
    try:
        serve(config, host=host, port=port)
    except HubError as exc:
        raise fail(service_error(config, exc), code=2) from None


@app.command("demo")
def demo_command(json_out: JsonOption = False) -> None:
    """Run the whole hub on the embedded default (no servers): train, stream, report."""
    import warnings

    from framework.demo import results_json, run_demo

    with warnings.catch_warnings():  # the demo's output is its table; library warnings would bury it
        warnings.simplefilter("ignore")
        results = run_demo(errors if json_out else console)
    if json_out:
        typer.echo(results_json(results))
    if results["stream"]["missing_predictions"]:
        raise typer.Exit(1)


@app.command("sample-data")
def sample_data_command(
    directory: Annotated[Path, typer.Argument(help="folder to write into (created if needed)")] = Path("data"),
) -> None:
    """Write the README's sample files: normal.csv, live.csv (with faults) and load.csv."""
    from framework.datasets.samples import SAMPLE_FILES, write_samples

    for name, path in write_samples(directory).items():
        console.print(f"[green]✓[/] {path}: {SAMPLE_FILES[name]}", highlight=False, soft_wrap=True)


FormatOption = Annotated[str | None, typer.Option("--format", help="records, split or arrow (see the README)")]


@app.command("stream")
def stream_command(
    name: Annotated[str, typer.Argument(help="experiment name: reads NAME.input, writes NAME.predictions")],
    config: ConfigOption = None,
    batch_size: Annotated[int, typer.Option(min=1, help="messages per micro-batch")] = 50,
    batch_timeout_ms: Annotated[int, typer.Option(min=1, help="longest wait to fill a micro-batch")] = 200,
    output_format: FormatOption = None,
    consumers: Annotated[int, typer.Option(min=1, help="competing scorer processes under one supervisor")] = 1,
    max_redeliveries: Annotated[
        int, typer.Option(min=0, help="dead-letter a message redelivered more often without being scored")
    ] = 5,
) -> None:
    """Score NAME.input continuously until SIGINT/SIGTERM (the batch in hand finishes and is acked).

    Predictions go out in each input's format unless --format names one. With --consumers N, N scorer processes
    compete for the queue; SIGTERM stops them all cleanly (see docs/scaling.md).
    """
    logging.getLogger("framework").setLevel(logging.INFO)
    if consumers > 1:
        import threading

        from framework.streaming import stop_on_signals, supervise

        command = [
            sys.executable,
            "-m",
            "framework.cli",
            "stream",
            name,
            "--batch-size",
            str(batch_size),
            "--batch-timeout-ms",
            str(batch_timeout_ms),
            "--max-redeliveries",
            str(max_redeliveries),
        ]
        command += ["--config", str(config)] if config else []
        command += ["--format", output_format] if output_format else []
        with stop_on_signals(threading.Event()) as stop:
            raise typer.Exit(supervise(command, consumers, stop))
    with open_hub(config) as hub:
        stats = hub_call(
            hub.stream,
            name,
            batch_size=batch_size,
            batch_timeout_ms=batch_timeout_ms,
            output_format=output_format,
            max_redeliveries=max_redeliveries,
        )
    print_json(stats.to_dict())


@app.command("publish")
def publish_command(
    name: Annotated[str, typer.Argument(help="experiment name: publishes to NAME.input")],
    data: Annotated[Path, typer.Option("--data", "-d", help="records to publish (CSV/Parquet/Excel)")],
    batch_size: Annotated[int, typer.Option(min=1, help="records per message")] = 100,
    message_format: FormatOption = "records",
    config: ConfigOption = None,
) -> None:
    """Feed NAME.input from a file, in messages of --batch-size records, with a progress bar."""
    from rich.progress import Progress

    from framework.plugins.datastream import input_queue
    from framework.records import load_frame

    frame = hub_call(load_frame, data)
    with open_hub(config) as hub, Progress(console=errors) as progress:
        task = progress.add_task(f"publishing to {input_queue(name)}", total=len(frame))
        ids = hub_call(
            hub.publish_records,
            name,
            frame,
            batch_size=batch_size,
            fmt=message_format or "records",
            on_progress=lambda done: progress.update(task, completed=done),
        )
    console.print(f"[green]✓[/] published {len(frame)} records in {len(ids)} messages to {input_queue(name)}")


@app.command("tail")
def tail_command(
    name: Annotated[str, typer.Argument(help="experiment name: watches NAME.predictions without taking from it")],
    alarms_only: Annotated[bool, typer.Option("--alarms-only", help="show only rows that raised an alarm")] = False,
    rows: Annotated[int, typer.Option(min=1, help="rows kept on screen")] = 20,
    count: Annotated[int | None, typer.Option(min=1, help="stop after this many rows")] = None,
    config: ConfigOption = None,
) -> None:
    """Show NAME's predictions live as a table, until Ctrl-C (downstream consumers still receive every one)."""
    import threading
    from collections import deque

    from rich.live import Live

    from framework.errors import HubError
    from framework.streaming import stop_on_signals

    shown: deque[dict[str, Any]] = deque(maxlen=rows)
    seen = 0
    with open_hub(config) as hub, stop_on_signals(threading.Event()) as stop:
        if hub.get_plugin("datastream") is None:
            raise fail("no datastream plugin is configured", code=2)
        with Live(_tail_table(name, shown), console=console, auto_refresh=False) as live:
            try:
                for frame in hub.watch_predictions(name, stop, alarms_only=alarms_only):
                    for record in frame.to_dict("records")[: None if count is None else count - seen]:
                        shown.append(record)
                        seen += 1
                    live.update(_tail_table(name, shown), refresh=True)
                    if count is not None and seen >= count:
                        break
            except HubError as exc:
                raise fail(str(exc)) from None


def _tail_table(name: str, records: Any) -> Table:
    columns = ["input_id", "timestamp", "score", "threshold", "is_anomaly", "top_features", "forecast", "actual"]
    present = [c for c in columns if any(c in r for r in records)] or ["input_id"]
    table = Table(title=f"{name} predictions", caption="Ctrl-C to stop")
    for column in present:
        table.add_column(column, justify="right" if column in {"score", "threshold", "forecast", "actual"} else "left")
    for record in records:
        alarm = bool(record.get("is_anomaly"))
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (record.get(c, "") for c in present)]
        table.add_row(*cells, style="bold red" if alarm else None)
    return table


@app.command("monitor")
def monitor_command(
    name: Annotated[str, typer.Argument(help="experiment name")],
    html: Annotated[
        Path | None, typer.Option(help="where to write the plotly figure (default: NAME-monitoring.html)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="recent events shown")] = 20,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show NAME's latest monitoring windows (per-feature drift) and recent events; write a plotly figure."""
    from framework.figures.monitoring import monitoring_figure

    with open_hub(config) as hub:
        report = hub_call(hub.monitoring_report, name, limit)
    if json_out:
        print_json(report)
        return
    for window in report["windows"]:
        table = Table(title=f"{name} window ending at row {cell(window.get('end_row'))} ({window['run_id'][:8]})")
        for column in ("feature", "drift ratio", "drifted"):
            table.add_column(column, justify="left" if column == "feature" else "right")
        for feature, ratio in sorted(window["drift"].items(), key=lambda item: -item[1]):
            table.add_row(feature, f"{ratio:.3g}", "yes" if ratio > 1 else "", style="bold red" if ratio > 1 else None)
        table.caption = (
            f"alarm rate {cell(window.get('alarm_rate'))}, score CUSUM / limit {cell(window.get('score_cusum_ratio'))}"
        )
        console.print(table)
    if not report["windows"]:
        console.print(f"no monitoring window recorded for {name} yet (run `experimenthub stream {name}`)")
    events = Table(title=f"{name} recent events")
    for column in ("time", "kind", "features", "statistic", "value", "threshold", "action"):
        events.add_column(column)
    for event in report["events"]:
        when = pd_time(event.get("time"))
        values = (event.get("statistic"), event.get("value"), event.get("threshold"), event.get("action"))
        events.add_row(when, event["kind"], ", ".join(event.get("features", [])), *(cell(v) for v in values))
    console.print(events)
    path = html or Path(f"{name}-monitoring.html")
    monitoring_figure(report).write_html(str(path), include_plotlyjs=True)  # plotly.js embedded: no CDN
    console.print(f"figure written to {path}")


def pd_time(epoch_ms: Any) -> str:
    """An event's epoch-ms time as UTC ISO seconds."""
    import datetime as dt

    if not isinstance(epoch_ms, int | float):
        return str(epoch_ms or "")
    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")


@app.command("delete")
def delete_command(
    name: Annotated[str, typer.Argument(help="experiment to delete, with its runs and registered model")],
    purge_queues: Annotated[
        bool, typer.Option("--purge-queues", help="also delete NAME.input, NAME.predictions and the dead-letter queue")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    config: ConfigOption = None,
) -> None:
    """Delete an experiment. Its queues (and the messages in them) stay unless --purge-queues."""
    if not yes:
        typer.confirm(f"delete experiment {name!r} with all its runs and versions?", abort=True)
    with open_hub(config) as hub:
        hub_call(hub.delete_experiment, name, purge_queues=purge_queues)
    console.print(f"[green]✓[/] deleted {name}" + (" and its queues" if purge_queues else ""))


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
