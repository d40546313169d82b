"""Messages and files <-> DataFrames: the one place input data is read, checked for size and decoded.

Stream message format (``content_type: application/json``), either an envelope::

    {"schema": "experimenthub.records/1", "id": "batch-0001", "records": [{"ts": "...", "s1": 0.4}, ...]}

or a bare list of records ``[{...}, {...}]``. Predictions are published in the same envelope, with
``"input_id"`` naming the input message and ``"timestamp"`` the scoring time.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from framework.errors import DataValidationError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "RECORDS_SCHEMA",
    "DataInput",
    "decode_message",
    "decode_records",
    "encode_records",
    "load_frame",
    "uniform_keys",
]

RECORDS_SCHEMA = "experimenthub.records/1"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
FILE_READERS = {
    ".csv": functools.partial(pd.read_csv, float_precision="round_trip"),  # floats read back exactly as written
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
    ".xlsx": pd.read_excel,
    ".xls": pd.read_excel,
    ".json": pd.read_json,
}

DataInput = pd.DataFrame | str | Path | Sequence[Mapping[str, Any]] | Mapping[str, Any]


def load_frame(data: DataInput) -> pd.DataFrame:
    """A DataFrame from a DataFrame, a CSV/Parquet/Excel/JSON path, a list of records, or a records envelope."""
    if isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, str | Path):
        frame = _read_file(Path(data))
    elif isinstance(data, Mapping):
        frame = _records_frame(_envelope_records(data))
    elif isinstance(data, Sequence) and not isinstance(data, bytes | bytearray):
        frame = _records_frame(data)
    else:
        raise TypeError(f"data must be a DataFrame, a file path or a list of records, not {type(data).__name__}")
    if frame.empty:
        raise DataValidationError("no rows", field="data")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_file(path: Path) -> pd.DataFrame:
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataValidationError(
            f"unsupported file type {path.suffix!r}; use one of {', '.join(FILE_READERS)}", field="data"
        )
    if not path.is_file():
        raise DataValidationError(f"file not found: {path}", field="data")
    try:
        return reader(path)
    except Exception as exc:
        raise DataValidationError(f"cannot read {path.name}: {exc}", field="data") from exc


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


def _records_frame(records: Any) -> pd.DataFrame:
    return pd.DataFrame.from_records(_check_records(records))


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
