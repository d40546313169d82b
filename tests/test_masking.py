"""Secrets are masked by parsing (issue 19 item 2): every form below, through health output, logs, errors and
tracking params. Each row is (id, text holding a secret, the secret, a part that must survive)."""

from __future__ import annotations

import logging

import pytest

from framework.errors import JobFailed, PluginError, RedactFilter, is_secret_key, redact
from framework.ExperimentHub import ExperimentHub

FORMS = [
    ("url-at-in-password", "http://hub:MLF@s3cret1@tracking:5000/api", "MLF@s3cret1", "tracking:5000/api"),
    ("url-two-ats", "redis://:CEL@s3@cret2@cache:6379/0", "CEL@s3@cret2", "cache:6379/0"),
    ("url-user-only-token", "https://ghp_T0ken3@git.example/repo", "ghp_T0ken3", "git.example/repo"),
    ("url-slash-in-password", "postgresql://u:pa/ss4@db:5432/x", "pa/ss4", "db:5432/x"),
    ("url-query-secret", "https://api.example/v1?api_key=K3y5&page=2", "K3y5", "page=2"),
    ("libpq-quoted-space", "host=db user=u password='sec ret6' dbname=x", "ret6", "dbname=x"),
    ("libpq-escaped-quote", r"host=db password='it\'s s3cret7' port=5432", "s3cret7", "port=5432"),
    ("double-quoted-space", 'password="two w0rds8" next', "w0rds8", "next"),
    ("json", '{"password": "json s3cret9", "host": "h1"}', "s3cret9", '"host": "h1"'),
    ("python-repr", "{'api_key': 'r3pr key10', 'host': 'h2'}", "key10", "'host': 'h2'"),
    ("sslpassword", "sslmode=require sslpassword=ssl11 sslcert=/c.pem", "ssl11", "sslcert=/c.pem"),
    ("pw", "pw=pw12&user=x", "pw12", "user=x"),
    ("passwd-spaces", "passwd = pass13 ok", "pass13", "ok"),
    ("secret", "secret='s e c14'", "c14", "secret="),
    ("token", "token=tok15;other=1", "tok15", "other=1"),
    ("odbc-pwd", "Server=x;Uid=u;Pwd=odbc16;", "odbc16", "Server=x"),
    ("env-style", "MLFLOW_TRACKING_PASSWORD=env17", "env17", "MLFLOW_TRACKING_PASSWORD="),
    ("yaml", "client_secret: yaml18", "yaml18", "client_secret:"),
    ("bearer-header", "Authorization: Bearer eyJ.bear19", "eyJ.bear19", "Authorization:"),
    ("bearer-in-dict", "headers={'Authorization': 'Bearer dict.b20'}", "dict.b20", "headers="),
    ("bare-bearer", "sent Bearer bare21 to the API", "bare21", "to the API"),
    ("x-api-key-header", "X-Api-Key: hdr22", "hdr22", "X-Api-Key:"),
    ("access-log-query", '127.0.0.1:5 - "GET /experiments?api_key=log23&x=1 HTTP/1.1" 401', "log23", "x=1 HTTP/1.1"),
    ("camel-case", "accessToken=camel24 next", "camel24", "next"),
    ("cli-flag", "run --password=flag26 --verbose", "flag26", "--verbose"),
    ("amqp-default-form", "amqp://guest:gu3st25@broker:5672//", "gu3st25", "broker:5672//"),
]
IDS = [row[0] for row in FORMS]


@pytest.mark.parametrize(("text", "secret", "kept"), [row[1:] for row in FORMS], ids=IDS)
def test_redact_masks_each_form_and_keeps_the_rest(text, secret, kept):
    masked = redact(text)
    assert secret not in masked and "***" in masked, masked
    assert kept in masked, masked
    assert redact(masked) == masked  # idempotent


def test_ordinary_text_is_left_alone():
    for text in (
        "http://localhost:5000/api/2.0/mlflow/runs",
        "plugins.datastream.config.port: Input should be a valid integer",
        "amqp://broker:5672// unreachable: [Errno 111] Connection refused",
        "n_components=3 threshold=0.99",
        '{"model": {"name": "mean"}, "threshold": {"pass": false}}',  # a spec stored as a tag stays valid JSON
    ):
        assert redact(text) == text


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("broker_password", True),
        ("sslpassword", True),
        ("pw", True),
        ("passwd", True),
        ("api-key", True),
        ("apiKey", True),
        ("X-Api-Key", True),
        ("client_secret", True),
        ("access_token", True),
        ("Authorization", True),
        ("private_key", True),
        ("n_components", False),
        ("host", False),
        ("max_tokens_seen", False),
        ("keyboard", False),
        ("path", False),
    ],
)
def test_is_secret_key(key, secret):
    assert is_secret_key(key) is secret


class Leaky:
    """A plugin that leaks ``text`` everywhere it can: health details (flat, nested, in lists) and exceptions."""

    def __init__(self, plugin_type: str, text: str, *, raise_in_health: bool = False) -> None:
        self.plugin_type, self.text, self.raise_in_health = plugin_type, text, raise_in_health

    def initialize(self) -> None: ...

    def shutdown(self) -> None:
        raise RuntimeError(f"shutdown failed: {self.text}")

    def health_check(self):
        if self.raise_in_health:
            raise ConnectionError(self.text)
        return True, {"uri": self.text, "nested": {"dsn": self.text, "list": [self.text]}, "password": "plain"}


class FailingInit(Leaky):
    def initialize(self) -> None:
        raise ConnectionError(self.text)


@pytest.mark.parametrize(("text", "secret", "kept"), [row[1:] for row in FORMS], ids=IDS)
def test_each_form_is_masked_in_health_logs_and_errors(text, secret, kept, caplog):
    hub = ExperimentHub()
    hub.register_plugin(Leaky("mlops", text))
    hub.register_plugin(Leaky("datastream", text, raise_in_health=True))
    report = hub.check_plugin_health()
    assert secret not in repr(report) and "plain" not in repr(report)
    assert report["mlops"]["details"]["password"] == "***"

    with caplog.at_level(logging.WARNING):
        hub.shutdown()  # both shutdowns raise; the hub logs why
    assert "shutdown failed" in caplog.text and secret not in caplog.text

    with pytest.raises(PluginError) as info:
        ExperimentHub().register_plugin(FailingInit("taskqueue", text))
    assert secret not in str(info.value)
    assert secret not in str(JobFailed(f"job failed: {text}"))


@pytest.mark.parametrize(("text", "secret", "kept"), [row[1:] for row in FORMS], ids=IDS)
def test_each_form_is_masked_by_the_log_filter(text, secret, kept):
    """The filter ``configure_logging`` installs on handlers, for messages that did not call redact()."""
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s -> %s", ("request", text), None)
    assert RedactFilter().filter(record)
    assert secret not in record.getMessage() and kept in record.getMessage()
    try:
        raise ValueError(text)
    except ValueError:
        import sys

        failed = logging.LogRecord("framework", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    RedactFilter().filter(failed)
    assert secret not in logging.Formatter().format(failed)


def test_access_log_lines_keep_their_shape_and_lose_the_key():
    from uvicorn.logging import AccessFormatter

    args = ("127.0.0.1:5000", "GET", "/experiments?api_key=K3y-123&page=2", "1.1", 401)
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
    RedactFilter().filter(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(record)
    assert line == '127.0.0.1:5000 - "GET /experiments?api_key=***&page=2 HTTP/1.1" 401 Unauthorized'


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    from framework.plugins.mlflow_plugin import MLflowPlugin

    plugin = MLflowPlugin(mlflow_uri=f"sqlite:///{tmp_path_factory.mktemp('masking') / 'mlflow.db'}")
    plugin.initialize()
    yield plugin
    plugin.shutdown()


def test_every_form_is_masked_in_tracking_params(tracking):
    with tracking.run("masking") as run_id:
        tracking.log_params(run_id, {f"form{i}": row[1] for i, row in enumerate(FORMS)} | {"db_password": "plain27"})
    params = tracking.get_run(run_id).params
    assert len(params) == len(FORMS) + 1
    for i, (_, _, secret, kept) in enumerate(FORMS):
        assert secret not in params[f"form{i}"] and kept in params[f"form{i}"], params[f"form{i}"]
    assert params["db_password"] == "***"
