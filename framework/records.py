"""Messages and files <-> DataFrames: the one place input data is read, checked for size and decoded.

Stream message format (``content_type: application/json``), either an envelope::

    {"schema": "experimenthub.records/1", "id": "batch-0001", "records": [{"ts": "...", "s1": 0.4}, ...]}

or a bare list of records ``[{...}, {...}]``. Predictions are published in the same envelope, with
``"input_id"`` naming the input message and ``"timestamp"`` the scoring time.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from framework.errors import DataValidationError

__all__ = [
    "FILE_READERS",
    "MAX_CELLS",
    "MAX_MESSAGE_BYTES",
    "RECORDS_SCHEMA",
    "DataInput",
    "csv_safe",
    "decode_message",
    "decode_records",
    "encode_records",
    "load_frame",
    "uniform_keys",
]

RECORDS_SCHEMA = "experimenthub.records/1"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_CELLS = 20_000_000  # rows x columns of one file or records list (about 160 MB of float64)

DataInput = pd.DataFrame | str | Path | Sequence[Mapping[str, Any]] | Mapping[str, Any]


def load_frame(data: DataInput, *, max_cells: int = MAX_CELLS) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a CSV/Parquet/Excel/JSON path, a list of records, or a records envelope.

    Files and records bigger than ``max_cells`` (rows x columns) are refused: Parquet and Excel before they are
    read (from the Parquet metadata; Excel row by row), CSV and JSON once parsed. A DataFrame is taken as it is.
    """
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, str | Path):
        frame = _read_file(Path(data), max_cells)
    elif isinstance(data, Mapping):
        frame = _records_frame(_envelope_records(data), max_cells)
    elif isinstance(data, Sequence) and not isinstance(data, bytes | bytearray):
        frame = _records_frame(data, max_cells)
    else:
        raise TypeError(f"data must be a DataFrame, a file path or a list of records, not {type(data).__name__}")
    if frame.empty:
        raise DataValidationError("no rows", field="data")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _check_cells(rows: int, columns: int, max_cells: int, what: str) -> None:
    if rows * columns > max_cells:
        raise DataValidationError(
            f"{what} has {rows} rows x {columns} columns = {rows * columns} cells, over the limit of {max_cells}",
            field="data",
        )


def _read_parquet(path: Path, max_cells: int) -> pd.DataFrame:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata  # the footer only: nothing is decompressed yet
    _check_cells(metadata.num_rows, metadata.num_columns, max_cells, path.name)
    return pd.read_parquet(path)


def _read_excel(path: Path, max_cells: int) -> pd.DataFrame:
    """The first sheet, counted row by row (the sheet's own dimension can lie) before pandas reads it.

    openpyxl parses the XML with defusedxml (a dependency), so entity-expansion bombs are refused."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        cells = rows = 0
        for row in workbook.worksheets[0].iter_rows(min_row=2, values_only=True):  # row 1: the header
            rows += 1
            cells += len(row)
            if cells > max_cells:
                raise DataValidationError(
                    f"{path.name} has over {max_cells} cells in its first {rows} rows, over the limit of {max_cells}",
                    field="data",
                )
    finally:
        workbook.close()
    return pd.read_excel(path, engine="openpyxl", nrows=rows)


def _read_csv(path: Path, max_cells: int) -> pd.DataFrame:
    frame = pd.read_csv(path, float_precision="round_trip")  # floats read back exactly as written
    _check_cells(*frame.shape, max_cells, path.name)
    return frame


def _read_json(path: Path, max_cells: int) -> pd.DataFrame:
    frame = pd.read_json(path)
    _check_cells(*frame.shape, max_cells, path.name)
    return frame


FILE_READERS = {
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".pq": _read_parquet,
    ".xlsx": _read_excel,
    ".json": _read_json,
}


def _read_file(path: Path, max_cells: int) -> pd.DataFrame:
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataValidationError(
            f"unsupported file type {path.suffix!r}; use one of {', '.join(FILE_READERS)}", field="data"
        )
    if not path.is_file():
        raise DataValidationError(f"file not found: {path}", field="data")
    try:
        return reader(path, max_cells)
    except DataValidationError:
        raise
    except Exception as exc:
        raise DataValidationError(f"cannot read {path.name}: {exc}", field="data") from exc


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose column names and text cells cannot run as spreadsheet formulas (``=cmd|...``): text starting
    with ``= + - @``, a tab or a carriage return gets a leading ``'`` (OWASP's CSV-injection advice)."""

    def escape(value: Any) -> Any:
        return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_STARTS) else value

    safe = frame.rename(columns=lambda c: escape(str(c)))
    for column in safe.select_dtypes(include=["object", "string"]).columns:
        safe[column] = safe[column].map(escape)
    return safe


def _envelope_records(message: Mapping[str, Any]) -> Any:
    schema = message.get("schema", RECORDS_SCHEMA)
    if schema != RECORDS_SCHEMA:
        raise DataValidationError(f"unsupported schema; expected {RECORDS_SCHEMA!r}", field="schema")
    if "records" not in message:
        raise DataValidationError("envelope has no 'records' list", field="records")
    return message["records"]


def _check_records(records: Any) -> list[Mapping[str, Any]]:
    if not isinstance(records, list):
        raise DataValidationError("records must be a list of objects", field="records")
    if records and not all(isinstance(r, Mapping) for r in records):
        index = next(i for i, r in enumerate(records) if not isinstance(r, Mapping))
        raise DataValidationError(f"record {index} is not an object", field=f"records.{index}")
    return records


def _records_frame(records: Any, max_cells: int = MAX_CELLS) -> pd.DataFrame:
    try:
        frame = pd.DataFrame.from_records(_check_records(records))
    except OverflowError:
        raise DataValidationError("a number is too large (beyond float64's range)", field="records") from None
    _check_cells(*frame.shape, max_cells, "the records")
    return frame


def decode_message(body: bytes | str, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[str | None, list[Mapping]]:
    """Decode one message body into ``(message_id or None, records)``; a bad body raises with the reason."""
    size = len(body)
    if size > max_bytes:
        raise DataValidationError(f"message of {size} bytes exceeds the limit of {max_bytes}", field="body")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataValidationError(f"not JSON: {exc}", field="body") from None
    if isinstance(payload, Mapping):
        message_id = payload.get("id")
        records = _check_records(_envelope_records(payload))
        return (str(message_id) if message_id is not None else None), records
    if isinstance(payload, list):
        return None, _check_records(payload)
    raise DataValidationError("expected an envelope object or a list of records", field="body")


def decode_records(body: bytes | str, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[str | None, pd.DataFrame]:
    """Decode one message body into ``(message_id or None, DataFrame)``; a bad body raises with the reason."""
    message_id, records = decode_message(body, max_bytes)
    return message_id, pd.DataFrame.from_records(records)


def uniform_keys(records: list[Mapping[str, Any]]) -> frozenset[str] | None:
    """The key set shared by every record, or None when records differ (or there are none)."""
    if not records:
        return None
    keys = records[0].keys()
    return frozenset(keys) if all(r.keys() == keys for r in records) else None


def encode_records(frame: pd.DataFrame, *, message_id: str | None = None, **extra: Any) -> bytes:
    """Encode a DataFrame as an envelope (vectorised via pandas' JSON writer); ``extra`` adds top-level fields."""
    records = frame.to_json(orient="records", date_format="iso", date_unit="ms")
    head = {"schema": RECORDS_SCHEMA, "id": message_id or uuid.uuid4().hex, "timestamp": time.time(), **extra}
    prefix = json.dumps(head, default=str)[:-1]
    return f'{prefix}, "records": {records}}}'.encode()
