"""feature_store.yaml: defaults, Feast's formats, ${ENV_VAR} substitution, strict errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from registry.config import (
    ConfigError,
    FileOfflineStoreConfig,
    RedisOnlineStoreConfig,
    RegistryConfig,
    RepoSettings,
    SqliteOnlineStoreConfig,
    load_repo_config,
)


def write_config(root: Path, text: str) -> Path:
    path = root / "feature_store.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def config_error(root: Path, text: str) -> str:
    write_config(root, text)
    with pytest.raises(ConfigError) as info:
        load_repo_config(root)
    return str(info.value)


# ---- defaults and accepted forms ------------------------------------------------------


def test_minimal_config_gets_feast_like_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\n")
    settings = load_repo_config(tmp_path)
    config = settings.config
    assert settings.root == tmp_path.resolve()
    assert config.project == "demo"
    assert config.provider == "local"
    assert config.online_store == SqliteOnlineStoreConfig(path="data/online_store.db")
    assert config.offline_store == FileOfflineStoreConfig()
    assert config.entity_key_serialization_version == 3
    assert config.registry_config == RegistryConfig(
        path="data/registry.db", registry_type="file", cache_ttl_seconds=5.0
    )
    assert settings.registry_path == tmp_path.resolve() / "data" / "registry.db"
    assert config.feature_server.enabled is True


def test_config_file_path_may_be_given_instead_of_folder(tmp_path: Path) -> None:
    path = write_config(tmp_path, "project: demo\nregistry: reg.json\n")
    settings = load_repo_config(path)
    assert settings.root == tmp_path.resolve()
    assert settings.registry_path == tmp_path.resolve() / "reg.json"


def test_registry_given_as_a_path_string(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\nregistry: state/registry.json\n")
    settings = load_repo_config(tmp_path)
    assert settings.config.registry_config == RegistryConfig(path="state/registry.json")
    assert settings.registry_path == tmp_path.resolve() / "state" / "registry.json"


def test_absolute_registry_path_is_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared" / "registry.db"
    (tmp_path / "repo").mkdir()
    write_config(tmp_path / "repo", f"project: demo\nregistry: {elsewhere}\n")
    assert load_repo_config(tmp_path / "repo").registry_path == elsewhere


def test_registry_given_as_a_mapping(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        project: demo
        registry:
          registry_type: file
          path: data/other_registry.db
          cache_ttl_seconds: 60
        """,
    )
    settings = load_repo_config(tmp_path)
    registry = settings.config.registry_config
    assert registry.registry_type == "file"
    assert registry.path == "data/other_registry.db"
    assert registry.cache_ttl_seconds == 60.0
    assert settings.registry_path == tmp_path.resolve() / "data" / "other_registry.db"


def test_registry_mapping_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\nregistry:\n  cache_ttl_seconds: 0.5\n")
    registry = load_repo_config(tmp_path).config.registry_config
    assert registry == RegistryConfig(path="data/registry.db", cache_ttl_seconds=0.5)


def test_sqlite_online_store(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        project: demo
        provider: local
        online_store:
          type: sqlite
          path: data/online.db
        offline_store:
          type: file
        entity_key_serialization_version: 2
        """,
    )
    config = load_repo_config(tmp_path).config
    assert config.online_store == SqliteOnlineStoreConfig(path="data/online.db")
    assert config.entity_key_serialization_version == 2


def test_online_store_type_defaults_to_sqlite(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\nonline_store:\n  path: data/x.db\n")
    assert load_repo_config(tmp_path).config.online_store == SqliteOnlineStoreConfig("data/x.db")


def test_redis_online_store_in_feast_format(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        project: demo
        online_store:
          type: redis
          redis_type: redis
          connection_string: "redis.internal:6380,db=2,password=s3cret,ssl=true"
          key_ttl_seconds: 3600
        """,
    )
    store = load_repo_config(tmp_path).config.online_store
    assert isinstance(store, RedisOnlineStoreConfig)
    assert store.connection_string == "redis.internal:6380,db=2,password=s3cret,ssl=true"
    assert store.redis_type == "redis"
    assert store.key_ttl_seconds == 3600


def test_redis_online_store_defaults(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\nonline_store:\n  type: redis\n")
    store = load_repo_config(tmp_path).config.online_store
    assert store == RedisOnlineStoreConfig(connection_string="localhost:6379", key_ttl_seconds=None)


def test_feature_server_section(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        """
        project: demo
        feature_server:
          type: local
          enabled: true
          port: 6566
          registry_ttl_sec: 2
        """,
    )
    server = load_repo_config(tmp_path).config.feature_server
    assert server.port == 6566
    assert server.registry_ttl_sec == 2.0


# ---- ${ENV_VAR} substitution -----------------------------------------------------------


def test_env_vars_are_substituted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LADLE_TEST_REDIS_HOST", "cache.example")
    monkeypatch.setenv("LADLE_TEST_REDIS_PASSWORD", "p@ss:word,")
    monkeypatch.setenv("LADLE_TEST_PROJECT", "from_env")
    monkeypatch.setenv("LADLE_TEST_STATE", str(tmp_path / "state"))
    write_config(
        tmp_path,
        """
        project: ${LADLE_TEST_PROJECT}
        registry:
          path: ${LADLE_TEST_STATE}/registry.db
        online_store:
          type: redis
          connection_string: "${LADLE_TEST_REDIS_HOST}:6379,password=${LADLE_TEST_REDIS_PASSWORD}"
        """,
    )
    settings = load_repo_config(tmp_path)
    assert settings.config.project == "from_env"
    assert settings.registry_path == tmp_path / "state" / "registry.db"
    store = settings.config.online_store
    assert isinstance(store, RedisOnlineStoreConfig)
    # The value is inserted as is: no YAML parsing of what the variable holds.
    assert store.connection_string == "cache.example:6379,password=p@ss:word,"


def test_env_var_set_to_empty_string_is_substituted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LADLE_TEST_SUFFIX", "")
    write_config(tmp_path, "project: demo${LADLE_TEST_SUFFIX}\n")
    assert load_repo_config(tmp_path).config.project == "demo"


def test_unset_env_var_names_the_variable_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LADLE_TEST_UNSET_PASSWORD", raising=False)
    message = config_error(
        tmp_path,
        """
        project: demo
        online_store:
          type: redis
          connection_string: "localhost:6379,password=${LADLE_TEST_UNSET_PASSWORD}"
        """,
    )
    assert message.startswith(str(tmp_path / "feature_store.yaml"))
    assert "online_store.connection_string" in message
    assert "${LADLE_TEST_UNSET_PASSWORD}" in message
    assert "not set" in message


def test_unset_env_var_at_top_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LADLE_TEST_UNSET_PROJECT", raising=False)
    message = config_error(tmp_path, "project: ${LADLE_TEST_UNSET_PROJECT}\n")
    assert f"{tmp_path / 'feature_store.yaml'}: project: " in message
    assert "${LADLE_TEST_UNSET_PROJECT}" in message


def test_env_vars_in_comments_and_plain_dollars_are_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LADLE_TEST_UNSET_IN_COMMENT", raising=False)
    write_config(
        tmp_path,
        """
        # password: ${LADLE_TEST_UNSET_IN_COMMENT}
        project: demo
        online_store:
          type: redis
          connection_string: "localhost:6379,password=$ecret"
        """,
    )
    store = load_repo_config(tmp_path).config.online_store
    assert isinstance(store, RedisOnlineStoreConfig)
    assert store.connection_string == "localhost:6379,password=$ecret"


# ---- mistakes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("project: demo\nbogus: 1\n", "bogus"),
        ("project: demo\nonline_store:\n  type: sqlite\n  bogus: 1\n", "online_store.bogus"),
        ("project: demo\nonline_store:\n  bogus: 1\n", "online_store.bogus"),
        ("project: demo\nonline_store:\n  type: redis\n  host: x\n", "online_store.host"),
        ("project: demo\nregistry:\n  path: r.db\n  bogus: 1\n", "registry.bogus"),
        ("project: demo\nfeature_server:\n  bogus: 1\n", "feature_server.bogus"),
        ("project: demo\noffline_store:\n  type: file\n  bogus: 1\n", "offline_store.bogus"),
    ],
)
def test_unknown_key_is_named_with_the_file(tmp_path: Path, text: str, key: str) -> None:
    message = config_error(tmp_path, text)
    assert message == f"{tmp_path / 'feature_store.yaml'}: {key}: unknown key"


@pytest.mark.parametrize(
    ("text", "key", "detail"),
    [
        ("project: 5\n", "project", "Expected `str`, got `int`"),
        (
            "project: demo\nregistry:\n  cache_ttl_seconds: x\n",
            "registry.cache_ttl_seconds",
            "Expected `float`, got `str`",
        ),
        ("project: demo\nregistry: 5\n", "registry", "got `int`"),
        ("project: demo\nregistry:\n  registry_type: s3\n", "registry.registry_type", "s3"),
        (
            "project: demo\nregistry:\n  registry_type: sql\n",
            "registry.path",
            "'data/registry.db' is not a PostgreSQL URL",
        ),
        ("project: demo\nprovider: gcp\n", "provider", "gcp"),
        ("project: demo\nonline_store:\n  type: postgres\n", "online_store.type", "postgres"),
        (
            "project: demo\nonline_store:\n  type: redis\n  key_ttl_seconds: soon\n",
            "online_store.key_ttl_seconds",
            "got `str`",
        ),
        ("project: demo\nonline_store: sqlite\n", "online_store", "got `str`"),
        ("project: demo\nfeature_server:\n  port: http\n", "feature_server.port", "got `str`"),
        (
            "project: demo\nentity_key_serialization_version: two\n",
            "entity_key_serialization_version",
            "got `str`",
        ),
    ],
)
def test_wrong_type_is_named_with_the_file(
    tmp_path: Path, text: str, key: str, detail: str
) -> None:
    message = config_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'feature_store.yaml'}: {key}: ")
    assert detail in message


def test_missing_project(tmp_path: Path) -> None:
    message = config_error(tmp_path, "registry: data/registry.db\n")
    assert message == f"{tmp_path / 'feature_store.yaml'}: project: required key is missing"


@pytest.mark.parametrize("project", ["my-project", "has space", "dotted.name", ""])
def test_project_name_must_be_an_identifier(tmp_path: Path, project: str) -> None:
    message = config_error(tmp_path, f"project: '{project}'\n")
    assert message.startswith(f"{tmp_path / 'feature_store.yaml'}: project: ")
    assert repr(project) in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_repo_config(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "feature_store.yaml") in message
    assert "not found" in message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_repo_config(tmp_path / "no_such_repo")


def test_invalid_yaml(tmp_path: Path) -> None:
    message = config_error(tmp_path, "project: demo\nonline_store: [unclosed\n")
    assert message.startswith(f"{tmp_path / 'feature_store.yaml'}: not valid YAML")


@pytest.mark.parametrize("text", ["", "- project\n- demo\n", "just a string\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    message = config_error(tmp_path, text)
    assert message.startswith(str(tmp_path / "feature_store.yaml"))
    assert "mapping" in message


def test_settings_resolve_relative_and_absolute_paths(tmp_path: Path) -> None:
    write_config(tmp_path, "project: demo\n")
    settings = load_repo_config(tmp_path)
    assert isinstance(settings, RepoSettings)
    assert settings.resolve("data/x.parquet") == tmp_path.resolve() / "data" / "x.parquet"
    assert settings.resolve("/abs/x.parquet") == Path("/abs/x.parquet")


def test_a_bare_env_reference_takes_the_variables_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LADLE_TEST_TTL", "3600")
    monkeypatch.setenv("LADLE_TEST_HOST", "10.0.0.1")
    (tmp_path / "feature_store.yaml").write_text(
        "project: p\n"
        "online_store:\n"
        "  type: redis\n"
        "  connection_string: ${LADLE_TEST_HOST}:6379\n"
        "  key_ttl_seconds: ${LADLE_TEST_TTL}\n"
    )
    config = load_repo_config(tmp_path).config.online_store
    assert isinstance(config, RedisOnlineStoreConfig)
    assert config.key_ttl_seconds == 3600
    assert config.connection_string == "10.0.0.1:6379"
