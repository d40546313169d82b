"""The fault-detection catalog: a dict from a config name to a detector class.

Every detector works on standardized data and has the same small interface::

    detector = build_detector("lof", {"n_neighbors": 30})     # ConfigError on an unknown name or param
    detector.fit(X_normal)                                     # numpy (n_rows, n_features)
    result = detector.score(X)                                 # DetectorScores: score (higher = more
                                                               # anomalous), contributions (row shares)
    result, carry = detector.score_stream(X_next, carry)       # X_next continues the rows before it; the
                                                               # shares on demand: result.explain(rows)

- ``pca``: PCA-MSPC (``framework.models.mspc.PCAMSPC``): T², SPE and their combined index.
- ``var_innovation``: a dynamic detector for closed loops (``framework.models.innovation.VARInnovation``):
  ridge-VAR one-step innovations and the static level, each PCA-monitored.
- ``isolation_forest``, ``elliptic_envelope`` (robust covariance, MCD) and ``lof`` (``novelty=True``) wrap
  scikit-learn; the score is the negated ``score_samples`` and the contributions are the per-feature |z| shares.
  Their params are the estimator's own ``__init__`` params, plus ``max_train_rows``: fit on a seeded random
  subset of at most that many rows (no limit for ``isolation_forest``; 2000 for ``elliptic_envelope``, whose
  MCD search takes seconds per thousand rows at 50 features; 10000 for ``lof``, whose scoring time grows with
  its training rows). ``random_state`` defaults to 0.

Config chooses only among these names: no import or method call is ever taken from config.
scikit-learn is imported when a wrapped detector is checked or fitted, not when this module is imported.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from importlib import import_module
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import numpy as np

from framework.errors import ConfigError
from framework.models.innovation import VARInnovation
from framework.models.mspc import PCAMSPC, DetectorScores, contribution_shares, with_contributions

__all__ = [
    "DETECTORS",
    "Detector",
    "EllipticEnvelopeDetector",
    "IsolationForestDetector",
    "LocalOutlierFactorDetector",
    "build_detector",
]


class Detector(Protocol):
    """What ``FaultDetectionExperiment`` needs from a catalog entry."""

    context_rows: int

    @classmethod
    def accepted_params(cls) -> list[str]: ...

    def check_params(self) -> None: ...

    def fit(self, X: np.ndarray) -> Detector: ...

    def score(self, X: np.ndarray, *, contributions: bool = True) -> DetectorScores: ...

    def score_stream(self, X: np.ndarray, carry: Any = None) -> tuple[DetectorScores, Any]: ...


class _SklearnDetector:
    """A scikit-learn outlier detector behind the catalog interface."""

    estimator: ClassVar[str]  # "module:Class", imported on first use
    fixed_params: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    default_max_train_rows: ClassVar[int | None] = None
    context_rows = 0

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    @classmethod
    def estimator_class(cls) -> type:
        module, _, name = cls.estimator.partition(":")
        return getattr(import_module(module), name)

    @classmethod
    def accepted_params(cls) -> list[str]:
        signature = inspect.signature(cls.estimator_class().__init__)
        names = [p for p in signature.parameters if p != "self" and p not in cls.fixed_params]
        return [*names, "max_train_rows"]

    def check_params(self) -> None:
        """Value checks of our own; the estimator checks its params when fitted."""
        rows = self.params.get("max_train_rows", self.default_max_train_rows)
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 2):
            raise ConfigError(f"must be an integer >= 2 or null, got {rows!r}", field="model.params.max_train_rows")

    def fit(self, X: np.ndarray) -> _SklearnDetector:
        """Fit the estimator on (a seeded subset of) ``X``; its complaints about params become ``ConfigError``."""
        self.check_params()
        params = {k: v for k, v in self.params.items() if k != "max_train_rows"}
        cls = self.estimator_class()
        if "random_state" in inspect.signature(cls.__init__).parameters:
            params.setdefault("random_state", 0)
        rows = self.params.get("max_train_rows", self.default_max_train_rows)
        if rows is not None and len(X) > rows:
            keep = np.random.default_rng(params.get("random_state") or 0).choice(len(X), rows, replace=False)
            X = X[np.sort(keep)]
        try:
            self.estimator_ = cls(**params, **self.fixed_params).fit(X)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{cls.__name__} refused its params: {exc}", field="model.params") from None
        return self

    def score(self, X: np.ndarray, *, contributions: bool = True) -> DetectorScores:
        score = -self.estimator_.score_samples(X)

        def explain(rows: np.ndarray | slice) -> np.ndarray:
            return contribution_shares(np.abs(X[rows]))

        result = DetectorScores(score=score, explain=explain)
        return with_contributions(result) if contributions else result

    def score_stream(self, X: np.ndarray, carry: None = None) -> tuple[DetectorScores, None]:
        """Rows are scored on their own: nothing to carry."""
        return self.score(X, contributions=False), None


class IsolationForestDetector(_SklearnDetector):
    """``sklearn.ensemble.IsolationForest``; score = -score_samples (about 0.3 normal .. 1 anomalous)."""

    estimator = "sklearn.ensemble:IsolationForest"


class EllipticEnvelopeDetector(_SklearnDetector):
    """``sklearn.covariance.EllipticEnvelope`` (MCD); score = robust squared Mahalanobis distance."""

    estimator = "sklearn.covariance:EllipticEnvelope"
    default_max_train_rows = 2_000


class LocalOutlierFactorDetector(_SklearnDetector):
    """``sklearn.neighbors.LocalOutlierFactor(novelty=True)``; score = local outlier factor."""

    estimator = "sklearn.neighbors:LocalOutlierFactor"
    fixed_params = MappingProxyType({"novelty": True})
    default_max_train_rows = 10_000


DETECTORS: dict[str, type[Detector]] = {
    "pca": PCAMSPC,
    "isolation_forest": IsolationForestDetector,
    "elliptic_envelope": EllipticEnvelopeDetector,
    "lof": LocalOutlierFactorDetector,
    "var_innovation": VARInnovation,
}


def build_detector(name: str, params: Mapping[str, Any] | None = None) -> Detector:
    """An unfitted detector from the catalog; ``ConfigError`` names an unknown detector or param."""
    params = dict(params or {})
    cls = DETECTORS.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(DETECTORS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown detector {name!r}.{hint} Choose one of {', '.join(DETECTORS)}", source="spec", field="model.name"
        )
    accepted = cls.accepted_params()
    for key in params:
        if key in getattr(cls, "fixed_params", {}):
            raise ConfigError(f"is fixed by the {name!r} detector", source="spec", field=f"model.params.{key}")
        if key not in accepted:
            raise ConfigError(
                f"unknown parameter for detector {name!r}; accepted: {', '.join(accepted)}",
                source="spec",
                field=f"model.params.{key}",
            )
    detector = cls(**params)
    detector.check_params()
    return detector
