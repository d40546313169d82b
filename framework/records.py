"""Messages and files <-> DataFrames: the one place input data is read, checked for size and decoded.

Stream messages come in three formats (see the README's "Stream message format"):

- ``records`` (``content_type: application/json``): an envelope
  ``{"schema": "experimenthub.records/1", "id": "batch-0001", "records": [{"ts": "...", "s1": 0.4}, ...]}``
  or a bare list of records ``[{...}, {...}]``;
- ``split`` (``application/json``): pandas' "split" orientation (MLflow's ``dataframe_split``),
  ``{"id": "batch-0001", "columns": ["ts", "s1"], "data": [["...", 0.4], ...]}``;
- ``arrow`` (``application/vnd.apache.arrow.stream``): one Arrow IPC stream; its id is the schema metadata's
  ``id``, else the AMQP ``message_id``.

Predictions go out in the input's format by default: JSON ones carry ``"input_id"`` (the input message) and
``"timestamp"`` (the scoring time) beside ``records`` or ``columns``/``data``.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from framework.errors import DataValidationError

__all__ = [
    "ARROW_CONTENT_TYPE",
    "FILE_READERS",
    "FORMATS",
    "JSON_CONTENT_TYPE",
    "MAX_CELLS",
    "MAX_MESSAGE_BYTES",
    "RECORDS_SCHEMA",
    "DataInput",
    "Message",
    "csv_safe",
    "decode_body",
    "decode_records",
    "encode_frame",
    "encode_parts",
    "encode_records",
    "load_frame",
    "records_frame",
    "repeated_keys_refused",
    "uniform_keys",
]

RECORDS_SCHEMA = "experimenthub.records/1"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
JSON_CONTENT_TYPE = "application/json"
ARROW_CONTENT_TYPE = "application/vnd.apache.arrow.stream"
FORMATS = ("records", "split", "arrow")
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


def _check_unique(names: Sequence[Any], what: str) -> None:
    """Readers rename (``a.1``) or overwrite a repeated column without a word: refuse it, naming it."""
    counts = Counter(str(name) for name in names)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise DataValidationError(f"{what} repeats column(s) {', '.join(map(repr, repeated))}", field=repeated[0])


def repeated_keys_refused(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: a key that repeats in one object is a data error (JSON parsers
    otherwise keep the last value silently)."""
    _check_unique([key for key, _ in pairs], "a JSON object")
    return dict(pairs)


def _read_parquet(path: Path, max_cells: int) -> pd.DataFrame:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    metadata = parquet.metadata  # the footer only: nothing is decompressed yet
    _check_cells(metadata.num_rows, metadata.num_columns, max_cells, path.name)
    _check_unique(parquet.schema_arrow.names, path.name)
    return pd.read_parquet(path)


def _read_excel(path: Path, max_cells: int) -> pd.DataFrame:
    """The first sheet, counted row by row (the sheet's own dimension can lie) before pandas reads it.

    openpyxl parses the XML with defusedxml (a dependency), so entity-expansion bombs are refused."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        header = next(workbook.worksheets[0].iter_rows(max_row=1, values_only=True), ())
        _check_unique([name for name in header if name is not None], path.name)
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
    _check_unique(pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0].tolist(), path.name)
    frame = pd.read_csv(path, float_precision="round_trip")  # floats read back exactly as written
    _check_cells(*frame.shape, max_cells, path.name)
    return frame


def _read_json(path: Path, max_cells: int) -> pd.DataFrame:
    with path.open("rb") as file:
        json.load(file, object_pairs_hook=repeated_keys_refused)
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
    if records and not all(type(r) is dict for r in records) and not all(isinstance(r, Mapping) for r in records):
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


def decode_records(
    body: bytes | str, content_type: str | None = None, max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[str | None, pd.DataFrame]:
    """Decode one message body of any format into ``(message_id or None, DataFrame)``; a bad body raises."""
    message = decode_body(body.encode() if isinstance(body, str) else body, content_type, max_bytes)
    return message.message_id, message.to_frame()


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The frame of records that share their keys (``uniform_keys``), built row tuple by row tuple: the same
    frame as ``pd.DataFrame.from_records``, about a quarter faster."""
    keys = list(records[0])
    if len(keys) < 2:
        return pd.DataFrame.from_records(records)
    row = itemgetter(*keys)
    return pd.DataFrame([row(record) for record in records], columns=keys)


def uniform_keys(records: list[Mapping[str, Any]]) -> frozenset[str] | None:
    """The key set shared by every record, or None when records differ (or there are none)."""
    if not records:
        return None
    keys = records[0].keys()
    return frozenset(keys) if all(r.keys() == keys for r in records) else None


def encode_records(frame: pd.DataFrame, *, message_id: str | None = None, **extra: Any) -> bytes:
    """Encode a DataFrame as a records envelope; ``extra`` adds top-level fields. Floats keep every digit."""
    return encode_frame(frame, "records", message_id=message_id, **extra)[0]


def _column_values(frame: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Column names and each column as a list of JSON-ready values (ISO-8601 times at ms, NaN/NaT as null)."""
    columns, values = [str(c) for c in frame.columns], []
    for name in frame.columns:
        array = frame[name].to_numpy()
        if array.dtype.kind == "M":
            text = np.datetime_as_string(array, unit="ms").astype(object)
            text[np.isnat(array)] = None
            values.append(text.tolist())
        else:
            values.append(array.tolist())
    return columns, values


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NaT or value is pd.NA:
        return None
    return str(value)


def _json(body: bytes | str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DataValidationError(f"not JSON: {exc}", field="body") from None


@dataclass
class Message:
    """One decoded stream message: ``records`` (records format, kept as dicts so a batch builds one frame) or
    ``frame`` (split and Arrow), its id, and its format."""

    message_id: str | None
    format: str
    records: list[Mapping[str, Any]] | None = None
    frame: pd.DataFrame | None = None
    table: Any = None  # the pyarrow Table of an Arrow message (a batch concatenates tables, then converts once)

    @property
    def rows(self) -> int:
        if self.records is not None:
            return len(self.records)
        return self.table.num_rows if self.table is not None else len(self.to_frame())

    @property
    def columns(self) -> list[str]:
        if self.table is not None:
            return list(self.table.column_names)
        return list(self.to_frame().columns)

    def to_frame(self) -> pd.DataFrame:
        if self.frame is None:
            self.frame = self.table.to_pandas() if self.table is not None else pd.DataFrame.from_records(self.records)
        return self.frame


def decode_body(body: bytes, content_type: str | None = None, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode a stream message of any format (chosen by ``content_type``, then by the JSON's shape)."""
    if len(body) > max_bytes:
        raise DataValidationError(f"message of {len(body)} bytes exceeds the limit of {max_bytes}", field="body")
    if content_type == ARROW_CONTENT_TYPE:
        message_id, table = _arrow_table(body)
        return Message(message_id, "arrow", table=table)
    payload = _json(body)
    if isinstance(payload, Mapping) and "columns" in payload and "records" not in payload:
        message_id = payload.get("id")
        return Message(None if message_id is None else str(message_id), "split", frame=_split_frame(payload))
    if isinstance(payload, Mapping):
        message_id = payload.get("id")
        records = _check_records(_envelope_records(payload))
        return Message(None if message_id is None else str(message_id), "records", records=records)
    if isinstance(payload, list):
        return Message(None, "records", records=_check_records(payload))
    raise DataValidationError("expected a records envelope, a split object or a list of records", field="body")


def _split_frame(payload: Mapping[str, Any]) -> pd.DataFrame:
    columns, data = payload.get("columns"), payload.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise DataValidationError("columns must be a list of names", field="columns")
    if len(set(columns)) != len(columns):
        raise DataValidationError("column names repeat", field="columns")
    if not isinstance(data, list):
        raise DataValidationError("data must be a list of rows", field="data")
    width = len(columns)
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != width:
            size = len(row) if isinstance(row, list) else type(row).__name__
            raise DataValidationError(f"row {index} has {size} value(s); {width} columns", field=f"data.{index}")
    return pd.DataFrame(data, columns=columns)


def _arrow_table(body: bytes) -> tuple[str | None, Any]:
    """The table of an Arrow IPC stream, and the ``id`` of its schema metadata if any."""
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(body).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(f"not an Arrow IPC stream: {exc}", field="body") from None
    if len(set(table.column_names)) != len(table.column_names):
        raise DataValidationError("column names repeat", field="columns")
    message_id = (table.schema.metadata or {}).get(b"id")
    return (None if message_id is None else message_id.decode(errors="replace")), table


def encode_frame(frame: pd.DataFrame, fmt: str, *, message_id: str | None = None, **extra: Any) -> tuple[bytes, str]:
    """Encode a DataFrame in ``fmt`` (one of ``FORMATS``); return the body and its content type.

    ``extra`` adds top-level fields to JSON formats and schema metadata to Arrow.
    """
    return encode_parts(frame, [len(frame)], fmt, [{"id": message_id or uuid.uuid4().hex, **extra}])[0]


def encode_parts(
    frame: pd.DataFrame, sizes: Sequence[int], fmt: str, heads: Sequence[Mapping[str, Any]]
) -> list[tuple[bytes, str]]:
    """Encode consecutive row blocks of ``frame`` (``sizes`` rows each) as one message each, converting the
    columns once for all of them; ``heads[i]`` holds block i's top-level fields (``id`` and any extra)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    now = time.time()
    if fmt == "arrow":
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        out = []
        for start, stop, head in zip(bounds[:-1], bounds[1:], heads, strict=True):
            part = table.slice(start, stop - start)
            part = part.replace_schema_metadata({k: str(v) for k, v in {"timestamp": now, **head}.items()})
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
            out.append((sink.getvalue().to_pybytes(), ARROW_CONTENT_TYPE))
        return out
    columns, values = _column_values(frame)
    if fmt == "records":
        rows: list[Any] = [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
        fixed: dict[str, Any] = {"schema": RECORDS_SCHEMA}
    else:
        rows = list(zip(*values, strict=True))
        fixed = {}
    key = "records" if fmt == "records" else "data"
    bodies = []
    for start, stop, head in zip(bounds[:-1], bounds[1:], heads, strict=True):
        message = {**fixed, "timestamp": now, **head, **({} if fmt == "records" else {"columns": columns})}
        message[key] = rows[start:stop]
        bodies.append((orjson.dumps(message, default=_json_default), JSON_CONTENT_TYPE))
    return bodies
