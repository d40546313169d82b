"""The ``Experiment`` base: pure ML on DataFrames (fit, predict, evaluate, figures). No network, no MLflow.

An experiment keeps its validated spec in ``spec`` and learns only in ``fit``; fitted state ends in ``_``.
The hub persists a fitted experiment through the MLOps plugin (it must pickle) and serves it again.

Data policy shared by every experiment type (documented in the README):

- **Timestamps** may be datetimes, ISO-8601 strings, or epoch numbers, whose unit is read from the column's
  largest magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds
  (each cut-off is the year 5138 in the smaller unit). Time zones are converted to UTC and dropped.
- **Features** default to every numeric column except the timestamp and the label.
- **Missing values**: ``fit`` drops rows with a missing feature value (with a warning);
  ``predict`` fills a missing value with the training median of that feature (with a warning).
- **Zero-variance features** in the training data carry no information and are dropped by ``fit`` (with a warning).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from framework.config import ExperimentSpec, validate_mapping
from framework.errors import DataValidationError

__all__ = ["DataQualityWarning", "Experiment", "Validation", "coerce_timestamps", "flatten_params"]

# An epoch number's unit by magnitude: below 1e11 (the year 5138 in seconds) seconds, and so on up to nanoseconds.
EPOCH_UNITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))


class DataQualityWarning(UserWarning):
    """Data was repaired by the documented policy (rows dropped, values filled, columns dropped)."""


@dataclass(frozen=True)
class Validation:
    """The champion gate's verdict on a freshly fitted model."""

    passed: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def coerce_timestamps(values: pd.Series, column: str) -> pd.Series:
    """Parse datetimes, ISO strings or epoch numbers (s, ms, µs or ns, by magnitude) into naive UTC ``datetime64``."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values if values.dt.tz is None else values.dt.tz_convert("UTC")  # naive: taken as UTC
    elif pd.api.types.is_numeric_dtype(values):
        parsed = _parse_epochs(values, column)
    else:
        try:
            parsed = pd.to_datetime(values, utc=True, format="ISO8601", cache=False)
        except (ValueError, TypeError):
            raise DataValidationError(
                "timestamps must be datetimes, ISO-8601 strings or epoch numbers", field=column
            ) from None
    if parsed.isna().any():
        raise DataValidationError(f"{int(parsed.isna().sum())} missing or unreadable timestamp(s)", field=column)
    return parsed if parsed.dt.tz is None else parsed.dt.tz_localize(None)


def _parse_epochs(values: pd.Series, column: str) -> pd.Series:
    """Epoch numbers in the unit their largest magnitude implies (``EPOCH_UNITS``); integers keep every digit."""
    numbers = values if pd.api.types.is_integer_dtype(values) else values.astype("float64")
    finite = numbers.to_numpy(dtype="float64")
    finite = finite[np.isfinite(finite)]
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    unit = next((unit for cut, unit in EPOCH_UNITS if largest < cut), "ns")
    try:
        return pd.to_datetime(numbers, unit=unit, utc=True, cache=False)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        raise DataValidationError(
            f"epoch timestamps up to {largest:.3g} ({unit}) are outside the years 1677-2262", field=column
        ) from None


def flatten_params(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: ``{"model": {"name": "pca"}}`` -> ``{"model.name": "pca"}``."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten_params(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


class Experiment(ABC):
    """Base of every experiment type. Subclasses set ``spec_model`` and implement the four methods.

    >>> exp = FaultDetectionExperiment({"model": {"name": "pca"}}).fit(normal_df)
    >>> exp.predict(live_df)[["score", "threshold", "is_anomaly"]]
    """

    spec_model: ClassVar[type[ExperimentSpec]] = ExperimentSpec
    supports_update: ClassVar[bool] = False  # True when update() absorbs new rows without refitting
    compares_with_champion: ClassVar[bool] = False  # True when validate() uses the champion as a reference

    def __init__(self, spec: Mapping[str, Any] | ExperimentSpec) -> None:
        if isinstance(spec, ExperimentSpec):
            spec = spec.model_dump(by_alias=True)
        self.spec = validate_mapping(self.spec_model, spec, source="spec")

    @abstractmethod
    def fit(self, df: pd.DataFrame) -> Experiment:
        """Learn from ``df``; set ``metrics_`` (holdout metrics) and return ``self``."""

    @abstractmethod
    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Score ``df`` without side effects; one output row per input row (or per forecast step)."""

    @abstractmethod
    def evaluate(self, df: pd.DataFrame) -> dict[str, float]:
        """Metrics against the labels in ``df`` (the spec's ``label`` column)."""

    @abstractmethod
    def figures(self, df: pd.DataFrame | None = None) -> dict[str, Any]:
        """Named plotly figures of the fit, or of ``df`` scored by the fitted model."""

    @abstractmethod
    def validate(self, reference: Experiment | None = None) -> Validation:
        """The champion gate: does the freshly fitted model meet its target on held-out data?

        ``reference`` is the champion in service (a fitted experiment of the same type), when there is one: the
        new model must then also be no worse than it on the same held-out data. A type that cannot compare ignores it.
        """

    def update(self, df: pd.DataFrame) -> Experiment:
        """Absorb new observations without a full refit, where the type supports it; default: refit."""
        return self.fit(df)

    def predict_stream(self, df: pd.DataFrame, state: Any = None) -> tuple[pd.DataFrame, Any]:
        """Score ``df`` as the continuation of the rows scored before (``state``, None at the start).

        Returns the predictions and the state for the next call, so that a stream's results do not depend on how
        it was batched: ``predict(a + b)`` equals ``predict_stream(a)`` then ``predict_stream(b, state)``.
        ``state`` is never changed in place (a failed batch is retried with the old one). Default: stateless.
        """
        return self.predict(df), state

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "metrics_")

    def check_is_fitted(self) -> None:
        if not self.is_fitted:
            raise DataValidationError(f"this {type(self).__name__} is not fitted yet; call fit() first")

    def params(self) -> dict[str, Any]:
        """The spec as flat ``dotted.key -> value`` params for tracking."""
        return flatten_params(self.spec.model_dump(mode="json", exclude_none=True))

    def feature_columns(self, df: pd.DataFrame) -> list[str]:
        """The spec's ``features``, or every numeric column except the timestamp and label."""
        self._check_frame(df)
        if self.spec.features:
            if missing := [c for c in self.spec.features if c not in df.columns]:
                raise DataValidationError(
                    f"missing feature column(s) {missing}; got {list(df.columns)[:20]}", field=missing[0]
                )
            return list(self.spec.features)
        skip = {self.spec.timestamp, self.spec.label}
        numeric = [
            c
            for c in df.columns
            if c not in skip and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
        ]
        if not numeric:
            raise DataValidationError(f"no numeric feature columns; got {list(df.columns)[:20]}", field="features")
        return numeric

    def check_training_data(self, df: pd.DataFrame) -> None:
        """Refuse data that cannot train this spec, naming the column: a missing or unreadable timestamp, a missing
        target or feature, a non-numeric value in a feature or target, or a column that mixes numbers and text.

        Cheap and side-effect free, so front doors call it before a job is queued.
        """
        self._check_frame(df)
        spec = self.spec
        if spec.timestamp:
            if spec.timestamp not in df.columns:
                raise DataValidationError(
                    f"the spec's timestamp column is missing; got {list(df.columns)[:20]}", field=spec.timestamp
                )
            coerce_timestamps(df[spec.timestamp], spec.timestamp)
        target = getattr(spec, "target", None)
        if target and target not in df.columns:
            raise DataValidationError(f"the spec's target column is missing; got {list(df.columns)[:20]}", field=target)
        skip = {spec.timestamp, spec.label, target}
        for column in df.columns:  # a mostly numeric column with some text would silently stop being a feature
            values = df[column]
            if column in skip or spec.features or pd.api.types.is_numeric_dtype(values):
                continue
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.notna().any() and (bad := numbers.isna() & values.notna()).any():
                raise DataValidationError(f"non-numeric value at row {bad.idxmax()!r}", field=str(column))
        columns = self.feature_columns(df) if target is None else [target]
        self.numeric_frame(df, [c for c in columns if c not in (spec.timestamp, spec.label)])

    def numeric_frame(self, df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        """``df[columns]`` as float64; a non-numeric value raises an error naming the column and the row."""
        out = {}
        for column in columns:
            values = df[column]
            if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
                converted = pd.to_numeric(values, errors="coerce")
                bad = converted.isna() & values.notna()
                if bad.any():
                    row = bad.idxmax()
                    raise DataValidationError(f"non-numeric value at row {row!r}", field=str(column))
                values = converted
            out[column] = values.astype("float64")
        return pd.DataFrame(out, index=df.index)

    @staticmethod
    def _check_frame(df: Any) -> None:
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if df.empty:
            raise DataValidationError("no rows", field="data")

    @staticmethod
    def warn(message: str) -> None:
        warnings.warn(message, DataQualityWarning, stacklevel=3)
