import pytest

from workers.settings import Settings, SettingsError


def test_defaults_are_valid() -> None:
    settings = Settings.from_env({})
    assert settings.capture_port == 8000
    assert settings.query_port == 8001
    assert settings.capture_max_body_bytes == 20 * 1024 * 1024
    assert settings.capture_max_event_bytes == 1024 * 1024
    assert settings.dev_api_key == "dev-api-key"
    assert settings.kafka_enable_idempotence is False


def test_environment_overrides_defaults() -> None:
    settings = Settings.from_env({"CAPTURE_PORT": "9000", "KAFKA_ENABLE_IDEMPOTENCE": "yes"})
    assert settings.capture_port == 9000
    assert settings.kafka_enable_idempotence is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CAPTURE_PORT", "eighty", "CAPTURE_PORT='eighty'"),
        ("CAPTURE_PORT", "70000", "between 0 and 65535"),
        ("KAFKA_ENABLE_IDEMPOTENCE", "maybe", "true or false"),
        ("KAFKA_COMPRESSION", "lz4", "cramjam"),
        ("CLICKHOUSE_URL", "mysql://x", "chdb://"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
        ("WRITER_BATCH_MAX_SECONDS", "0", "WRITER_BATCH_MAX_SECONDS"),
        ("POSTGRES_DSN", " ", "must not be empty"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
