from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.components import Tansu, create_database, drop_database
from workers.kafka import ensure_topics
from workers.migrate import migrate_postgres
from workers.settings import Settings


@pytest.fixture(scope="session")
def tansu() -> Iterator[Tansu]:
    broker = Tansu().start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
async def pg_dsn() -> AsyncIterator[str]:
    dsn = await create_database()
    await migrate_postgres(dsn)
    yield dsn
    await drop_database(dsn)


@pytest.fixture(scope="session")
def make_settings() -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        return Settings.from_env({k.upper(): str(v) for k, v in overrides.items()})

    return make


@pytest.fixture(scope="session")
async def kafka_settings(tansu: Tansu, make_settings: Callable[..., Settings]) -> Settings:
    settings = make_settings(
        kafka_bootstrap_servers=tansu.bootstrap, kafka_topic_partitions=4, kafka_session_timeout_seconds=2
    )
    await ensure_topics(settings)
    return settings
