"""Where `ladle serve` takes each option from: command line, then $LADLE_*, then the yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import build_parser
from app.serve_options import (
    ENVIRONMENT,
    ServeOptions,
    app_access_log,
    effective_workers,
    resolve,
)
from registry.config import ConfigError, FeatureServerConfig, TlsConfig, parse_repo_config


def server_config(**values: object) -> FeatureServerConfig:
    return parse_repo_config({"project": "p", "feature_server": values}, "test").feature_server


def test_defaults() -> None:
    options = resolve({}, FeatureServerConfig(), environ={})
    assert options == ServeOptions()
    assert options.max_requests is None  # never recycle workers unless asked
    assert options.worker_connections == 1000


def test_command_line_beats_environment_beats_yaml() -> None:
    yaml_config = server_config(port=7000, workers=3, worker_connections=50, log_level="error")
    environ = {"LADLE_PORT": "7100", "LADLE_WORKERS": "2"}
    options = resolve({"port": 7200, "host": None}, yaml_config, environ=environ)
    assert options.port == 7200  # command line
    assert options.workers == 2  # environment
    assert options.worker_connections == 50  # yaml
    assert options.log_level == "error"  # yaml
    assert options.host == "127.0.0.1"  # default: None on the command line means unset


def test_every_option_has_an_environment_variable_and_a_flag() -> None:
    fields = set(ServeOptions.__dataclass_fields__)
    assert set(ENVIRONMENT) == fields
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for name, (variable, _) in ENVIRONMENT.items():
        assert variable in help_text, name
        flag = "--no-access-log" if name == "access_log" else "--" + name.replace("_", "-")
        assert flag in help_text, name


def test_environment_values_are_parsed_and_checked() -> None:
    environ = {
        "LADLE_ACCESS_LOG": "false",
        "LADLE_METRICS": "true",
        "LADLE_MAX_REQUESTS": "500",
        "LADLE_KEEP_ALIVE_TIMEOUT": "2.5",
    }
    options = resolve({}, FeatureServerConfig(), environ=environ)
    assert (options.access_log, options.metrics, options.max_requests) == (False, True, 500)
    assert options.keep_alive_timeout == 2.5
    with pytest.raises(ConfigError, match=r"\$LADLE_PORT: .*'abc'"):
        resolve({}, FeatureServerConfig(), environ={"LADLE_PORT": "abc"})
    with pytest.raises(ConfigError, match=r"\$LADLE_ACCESS_LOG: 'maybe' is not a boolean"):
        resolve({}, FeatureServerConfig(), environ={"LADLE_ACCESS_LOG": "maybe"})


def test_yaml_tls_and_metrics(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_text("k")
    cert.write_text("c")
    config = server_config(
        tls={"key": str(key), "cert": str(cert)}, metrics={"enabled": True, "port": 9100}
    )
    assert config.tls == TlsConfig(key=str(key), cert=str(cert))
    options = resolve({}, config, environ={})
    assert (options.key, options.cert) == (str(key), str(cert))
    assert (options.metrics, options.metrics_port) == (True, 9100)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"key": "/nonexistent/key.pem"}, "needs both a key and a certificate"),
        ({"key": "/nonexistent/k", "cert": "/nonexistent/c"}, "TLS file /nonexistent/k not found"),
        ({"worker_connections": 0}, "worker_connections must be at least 1"),
        ({"max_requests": 0}, "max_requests must be at least 1"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"port": 70000}, "ports must be between"),
        ({"keep_alive_timeout": 0.0}, "keep_alive_timeout must be positive"),
    ],
)
def test_mistakes_are_refused_before_any_worker_starts(
    given: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(given, FeatureServerConfig(), environ={})


def test_yaml_mistakes_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"feature_server.log_level"):
        server_config(log_level="loud")
    with pytest.raises(ConfigError, match=r"feature_server.tls.cert: required key is missing"):
        server_config(tls={"key": "k"})


def test_workers_minus_one_means_two_per_core_plus_one() -> None:
    assert effective_workers(-1) >= 3
    assert effective_workers(4) == 4


def test_the_app_logs_access_only_when_asked() -> None:
    """`ladle serve` always exports its choice; under another server it is off unless set."""
    assert not app_access_log(FeatureServerConfig(), environ={})
    assert app_access_log(FeatureServerConfig(), environ={"LADLE_ACCESS_LOG": "true"})
    assert app_access_log(server_config(access_log=True), environ={})
    assert not app_access_log(server_config(access_log=True), {"LADLE_ACCESS_LOG": "false"})
