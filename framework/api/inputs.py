"""Request bodies the scoring routes accept, decoded into DataFrames (the API side of ``framework.records``).

``POST /experiments/{name}/predict`` (JSON):

- the records envelope ``{"schema": ..., "id": ..., "records": [...]}`` (or just ``{"records": [...]}``);
- a bare list of records ``[{...}, {...}]``;
- split JSON ``{"columns": [...], "data": [[...], ...]}`` (pandas ``orient="split"``; ``index`` is ignored);
- or a file upload / ``text/csv`` body (handled in ``framework.api.app``).

``POST /experiments/{name}/invocations``: MLflow's scoring formats, one key of ``dataframe_split``,
``dataframe_records``, ``instances`` or ``inputs`` (records, or ``{column: [values]}``).

>>> frame_from_split({"columns": ["a", "b"], "data": [[1, 2.5]]})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pydantic
from fastapi.exceptions import RequestValidationError

from framework.api.models import RecordsIn
from framework.errors import DataValidationError
from framework.records import repeated_keys_refused

__all__ = ["MLFLOW_FORMATS", "decode_json", "frame_from_split", "invocation_frame", "predict_input"]

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _invalid(field: tuple[Any, ...], message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", *field), "msg": message}])


def decode_json(raw: bytes) -> Any:
    """The JSON value of a body; a body that is not JSON, or repeats a key in one object, is the usual 422."""
    try:
        return json.loads(raw, object_pairs_hook=repeated_keys_refused)
    except DataValidationError as exc:
        raise _invalid((exc.field or "",), exc.reason) from None
    except RecursionError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON nested too deeply", "ctx": {"error": "depth"}}]
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = getattr(exc, "msg", None) or getattr(exc, "reason", "decode error")
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": reason}}]
        ) from None


def _records_in(payload: Any, prefix: tuple[Any, ...] = ()) -> RecordsIn:
    """Validate an envelope (or a bare list, as its records); a bad value names its place."""
    try:
        return RecordsIn.model_validate(payload if isinstance(payload, Mapping) else {"records": payload})
    except pydantic.ValidationError as exc:
        skip = 0 if isinstance(payload, Mapping) else 1  # a bare list was wrapped as "records"
        errors = [
            {**e, "loc": ("body", *prefix, *e["loc"][skip:])}
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise RequestValidationError(errors) from None


def _check_cells(frame: pd.DataFrame, field: tuple[Any, ...]) -> pd.DataFrame:
    """Cells must be numbers, strings, booleans or null, as in a record (no nested objects or lists)."""
    for column in frame.select_dtypes(include="object").columns:
        nested = frame[column].map(lambda v: isinstance(v, dict | list))
        if nested.any():
            raise _invalid((*field, str(column)), f"row {int(nested.to_numpy().argmax())}: must be a scalar")
    if frame.empty:
        raise _invalid(field, "no rows")
    return frame


def frame_from_split(payload: Any, field: tuple[Any, ...] = ()) -> pd.DataFrame:
    """A DataFrame from split JSON ``{"columns": [...], "data": [[...], ...]}`` (``index`` is ignored)."""
    if not isinstance(payload, Mapping):
        raise _invalid(field, 'expected {"columns": [...], "data": [[...], ...]}')
    if unknown := sorted(set(payload) - {"columns", "data", "index"}):
        raise _invalid((*field, unknown[0]), "unknown key; split JSON has columns, data and index")
    columns, data = payload.get("columns"), payload.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise _invalid((*field, "columns"), "must be a list of column names")
    if len(set(columns)) != len(columns):
        raise _invalid((*field, "columns"), "column names must be unique")
    if not isinstance(data, list):
        raise _invalid((*field, "data"), "must be a list of rows")
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise _invalid((*field, "data", index), f"must be a list of {len(columns)} values (one per column)")
    return _check_cells(pd.DataFrame(data, columns=columns), field)


def _columnar(payload: Mapping[str, Any], field: tuple[Any, ...]) -> pd.DataFrame:
    """``{column: [values]}`` with equally long lists."""
    lengths = {len(v) if isinstance(v, list) else -1 for v in payload.values()}
    if -1 in lengths or len(lengths) != 1:
        raise _invalid(field, "expected {column: [values], ...} with lists of equal length")
    return _check_cells(pd.DataFrame(dict(payload)), field)


def predict_input(raw: bytes) -> tuple[str | None, Any]:
    """``(input id or None, records or DataFrame)`` from a JSON predict body in any accepted shape."""
    payload = decode_json(raw)
    if isinstance(payload, Mapping) and "records" not in payload and {"columns", "data"} <= set(payload):
        return None, frame_from_split(payload)
    body = _records_in(payload)
    return body.id, body.records


def invocation_frame(raw: bytes) -> pd.DataFrame | list[dict[str, Any]]:
    """The rows of an MLflow scoring request (exactly one of ``MLFLOW_FORMATS``), like ``mlflow models serve``."""
    payload = decode_json(raw)
    keys = [k for k in MLFLOW_FORMATS if isinstance(payload, Mapping) and k in payload]
    if len(keys) != 1:
        raise _invalid((), f"give exactly one of {', '.join(MLFLOW_FORMATS)}")
    key = keys[0]
    if unknown := sorted(set(payload) - {key, "params"}):
        raise _invalid((unknown[0],), f"unknown key next to {key!r}")
    value = payload[key]
    if key == "dataframe_split":
        return frame_from_split(value, (key,))
    if isinstance(value, Mapping):  # instances / inputs as {column: [values]}
        return _columnar(value, (key,))
    if isinstance(value, list) and value and not all(isinstance(row, Mapping) for row in value):
        raise _invalid((key,), "rows without column names cannot be scored; use records or dataframe_split")
    return _records_in(value, (key,)).records
