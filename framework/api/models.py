"""Request and response models of the REST API (they are what makes the OpenAPI spec meaningful)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from framework.records import RECORDS_SCHEMA

__all__ = [
    "DATASET_PATTERN",
    "JOB_ID_PATTERN",
    "NAME_PATTERN",
    "ErrorBody",
    "ErrorDetail",
    "EvaluationOut",
    "ExperimentCreate",
    "ExperimentOut",
    "ExperimentTypeOut",
    "JobAccepted",
    "JobOut",
    "PluginHealth",
    "PredictionsOut",
    "PublishedOut",
    "Record",
    "RecordsIn",
    "TrainIn",
    "VersionOut",
]

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DATASET_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.(csv|parquet|pq|xlsx|xls|json)$"


def _scalar(value: Any) -> Any:
    """A record value: a JSON number, string, boolean or null (no nested objects or lists)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError("must be a number, string, boolean or null")


Scalar = Annotated[
    Any,
    PlainValidator(_scalar),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}, {"type": "null"}]}),
]
Record = dict[str, Scalar]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorDetail(BaseModel):
    code: str = Field(description="short machine string: not_found, validation_error, conflict, ...")
    message: str
    field: str | None = Field(default=None, description="the field, parameter or column at fault, when known")


class ErrorBody(BaseModel):
    """Every error response has this shape."""

    error: ErrorDetail


class PluginHealth(BaseModel):
    healthy: bool
    details: dict[str, Any] | None = Field(None, description="only with the API key, or ?details=true without one")


class ExperimentTypeOut(BaseModel):
    name: str
    module: str
    class_name: str = Field(serialization_alias="class")


class ExperimentCreate(_In):
    name: str = Field(pattern=NAME_PATTERN, description="unique experiment name")
    type: str = Field(pattern=NAME_PATTERN, description="an experiment type from GET /experiment-types")
    spec: dict[str, Any] = Field(default_factory=dict, description="the experiment type's spec (model, features, ...)")
    exist_ok: bool = Field(default=False, description="return the existing experiment instead of 409")


class ExperimentOut(BaseModel):
    name: str
    type: str
    spec: dict[str, Any]
    champion: int | None = Field(default=None, description="the model version in service")
    incarnation: str | None = Field(default=None, description="id of this creation of the name (new after a delete)")


class RecordsIn(_In):
    """``{"records": [...]}`` or the full records envelope (``schema``, ``id``, ``records``)."""

    schema_: Literal["experimenthub.records/1"] = Field(default=RECORDS_SCHEMA, alias="schema")
    id: str | None = Field(default=None, max_length=128)
    timestamp: float | None = None
    records: list[Record] = Field(
        min_length=1, description="one object per row: column -> number, string, bool or null"
    )


class TrainIn(_In):
    """Training data as records (or a records envelope), or a reference to a file in the hub's dataset folder."""

    schema_: Literal["experimenthub.records/1"] = Field(default=RECORDS_SCHEMA, alias="schema")
    id: str | None = Field(default=None, max_length=128)
    timestamp: float | None = None
    records: list[Record] | None = Field(default=None, min_length=1)
    dataset: str | None = Field(
        default=None,
        pattern=DATASET_PATTERN,
        description="a file name in <state_dir>/datasets/ (CSV, Parquet, Excel or JSON)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> TrainIn:
        if (self.records is None) == (self.dataset is None):
            raise ValueError("give exactly one of 'records' or 'dataset'")
        return self


class JobAccepted(BaseModel):
    job_id: str
    experiment: str
    state: str = "queued"
    status_url: str


class JobOut(BaseModel):
    job_id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    result: dict[str, Any] | None = None
    error: str | None = None


class PredictionsOut(BaseModel):
    """Predictions in the records envelope; NaN becomes null and timestamps are ISO-8601."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: str = Field(alias="schema")
    id: str
    timestamp: float
    input_id: str | None = None
    model_version: int = Field(description="the model version that scored (also the X-Model-Version header)")
    champion: bool = Field(description="whether that version is the champion")
    warning: str | None = Field(
        default=None, description="set when the experiment has no champion: why its newest version did not validate"
    )
    records: list[dict[str, Any]]


class EvaluationOut(BaseModel):
    experiment: str
    metrics: dict[str, float | None] = Field(description="detection or forecast metrics; null when undefined")


class PublishedOut(BaseModel):
    queue: str
    records: int
    message_ids: list[str]


class VersionOut(BaseModel):
    name: str
    version: int
    run_id: str | None = None
    aliases: list[str] = Field(default_factory=list)
    created: int | None = None
    tags: dict[str, str] = Field(default_factory=dict)
