"""The private servers themselves: what the other scaled-mode tests (and bench/) rely on."""

from __future__ import annotations

import psycopg
import redis

SECOND_ADDRESS = "127.0.0.2"  # loopback too, but a distinct address, as a veth's would be


def test_both_servers_also_listen_on_an_address_added_later(scaled_services, scaled_stack):
    postgres, server = scaled_services.postgres, scaled_services.redis
    postgres.listen_also(SECOND_ADDRESS)
    server.listen_also(SECOND_ADDRESS)
    url = scaled_stack.database_url.replace("127.0.0.1", SECOND_ADDRESS)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM sysops_run").fetchone() == (0,)
    client = redis.Redis.from_url(server.url_at(SECOND_ADDRESS))
    try:
        assert client.ping()
    finally:
        client.close()


def test_postgresql_also_listens_on_a_unix_socket_of_its_own(scaled_services):
    postgres = scaled_services.postgres
    with psycopg.connect(host=str(postgres.dir), port=postgres.port, user="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
