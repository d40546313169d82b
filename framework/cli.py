"""The ``experimenthub`` command line (Typer + Rich). A thin front door: parse, call the hub, render.

Heavy libraries are imported inside commands so ``experimenthub --help`` starts fast.
"""

from __future__ import annotations

import json
import logging
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

console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="hub_config.yaml (default: ./hub_config.yaml, else the embedded default)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error (no traceback) and return the exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def open_hub(config: Path | None) -> Any:
    """Build the hub from ``config``; hub errors become a one-line message and exit code 2."""
    from framework.errors import HubError
    from framework.ExperimentHub import ExperimentHub

    try:
        return ExperimentHub.from_config(config)
    except HubError as exc:
        raise fail(str(exc), code=2) from None


@app.callback()
def _setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log at debug level")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@config_app.command("check")
def config_check(path: Annotated[Path, typer.Argument(help="the hub_config.yaml to check")]) -> None:
    """Validate a config file; exit 0 when it is valid, 1 with readable errors otherwise."""
    from framework.config import HubConfig, load_yaml_model
    from framework.errors import ConfigError

    try:
        config = load_yaml_model(HubConfig, path)
    except ConfigError as exc:
        for problem in exc.problems:
            errors.print(f"[bold red]✗[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    enabled = ", ".join(f"{t}={e.type}" for t, e in config.plugins.enabled().items()) or "none"
    types = ", ".join(config.experiment_types()) or "none"
    console.print(f"[green]✓[/] {path} is valid: plugins {enabled}; experiment types {types}", highlight=False)


@app.command("plugins")
def plugins_command(json_out: JsonOption = False) -> None:
    """List plugin types and their implementations, entry points included."""
    from framework.plugins.registry import list_plugins

    rows = list_plugins()
    if json_out:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="ExperimentHub plugins")
    for column in ("type", "name", "target", "source"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["type"], row["name"], row["target"], row["source"])
    console.print(table)


@app.command("health")
def health_command(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Check every plugin; exit 0 when all are healthy, 1 otherwise."""
    hub = open_hub(config)
    with hub:
        report = hub.check_plugin_health()
    if json_out:
        console.print_json(json.dumps(report, default=str))
    else:
        render_health(report)
    if not report or not all(entry["healthy"] for entry in report.values()):
        raise typer.Exit(1)


def render_health(report: dict[str, dict[str, Any]]) -> None:
    table = Table(title="Plugin health")
    table.add_column("plugin")
    table.add_column("status")
    table.add_column("details")
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
    from framework.errors import HubError
    from framework.worker import run_worker

    try:
        run_worker(config, concurrency=concurrency, loglevel=loglevel)
    except HubError as exc:
        raise fail(str(exc), code=2) from None


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
