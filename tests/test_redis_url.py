"""REDIS_URL's forms (infra/redis_url.py): one server, or a Sentinel-managed primary."""

from __future__ import annotations

import pytest

from infra.redis_url import SentinelURL, layer_host, parse_sentinel


def test_a_plain_url_is_not_sentinel_and_goes_to_the_layer_as_an_address():
    assert parse_sentinel("redis://127.0.0.1:6379/0") is None
    assert layer_host("unix:///tmp/r.sock?db=0", socket_timeout=None) == {
        "address": "unix:///tmp/r.sock?db=0",
        "socket_timeout": None,
    }


def test_sentinel_url_with_several_sentinels_a_password_and_a_database():
    url = "redis+sentinel://:s%40cret@h1:26379,h2:26380,h3/mymaster/2"
    assert parse_sentinel(url) == SentinelURL(
        sentinels=(("h1", 26379), ("h2", 26380), ("h3", 26379)),
        service="mymaster",
        db=2,
        password="s@cret",
    )
    assert layer_host(url, socket_connect_timeout=2) == {
        "master_name": "mymaster",
        "sentinels": [["h1", 26379], ["h2", 26380], ["h3", 26379]],
        "db": 2,
        "password": "s@cret",
        "socket_connect_timeout": 2,
    }


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1:26379",  # no service
        "redis+sentinel:///mymaster",  # no sentinel
        "redis+sentinel://h1:port/mymaster",
        "redis+sentinel://h1/mymaster/zero",
        "redis+sentinel://h1/mymaster/0/extra",
    ],
)
def test_a_malformed_sentinel_url_is_refused_with_the_expected_form(url):
    with pytest.raises(ValueError, match=r"redis\+sentinel://\[:password@\]host:port"):
        parse_sentinel(url)
