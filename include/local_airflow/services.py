"""PostgreSQL and Redis of the multi-node setups, as they run on every development machine."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator

# The multi-node setup's services, as on every development machine.
POSTGRES = ("127.0.0.1", 5432)


REDIS = ("127.0.0.1", 6379)


def reachable(address: tuple[str, int]) -> bool:
    """Something listens at ``address`` (PostgreSQL, Redis)."""
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database for one Airflow (its SQLAlchemy URL), dropped afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def fresh_redis_broker(index: int) -> Iterator[str]:
    """Redis database ``index`` as a Celery broker (its URL), emptied before and after."""
    import redis

    client = redis.Redis(host=REDIS[0], port=REDIS[1], db=index)
    client.flushdb()
    try:
        yield f"redis://{REDIS[0]}:{REDIS[1]}/{index}"
    finally:
        client.flushdb()
