"""
The lab's wheelhouse (lab/wheelhouse.py): exactly the lock's wheels are chosen from the
wheel cache, a pin the cache lacks is named before anything is served, and the
wheelhouse's URL must be on the package repository's server.
"""

from __future__ import annotations

import pytest

from lab import apt_repo, wheelhouse
from lab.config import LabError

REPOSITORY = "http://198.18.1.1:8081/core:/stable:/v1.34/deb/"


def _cache(tmp_path, names):
    for name in names:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_the_lock_pins_are_read_by_canonical_name():
    pinned = wheelhouse.pins()
    assert pinned["etcd3"] == "0.12.0"
    assert "requests-oauthlib" in pinned and "websocket-client" in pinned


def test_exactly_the_pinned_wheels_are_chosen(tmp_path):
    cache = _cache(
        tmp_path,
        [
            "etcd3-0.12.0-py2.py3-none-any.whl",
            "etcd3-0.11.0-py2.py3-none-any.whl",
            "requests_oauthlib-2.0.0-py2.py3-none-any.whl",
            "salt-3008.3-py3-none-any.whl",
        ],
    )
    chosen = wheelhouse.wheels(cache, {"etcd3": "0.12.0", "requests-oauthlib": "2.0.0"})
    assert [wheel.name for wheel in chosen] == [
        "etcd3-0.12.0-py2.py3-none-any.whl",
        "requests_oauthlib-2.0.0-py2.py3-none-any.whl",
    ]


def test_a_pin_the_cache_lacks_is_named(tmp_path):
    cache = _cache(tmp_path, ["etcd3-0.12.0-py2.py3-none-any.whl"])
    with pytest.raises(LabError, match=r"has no wheel of tenacity==9\.2\.1 "):
        wheelhouse.wheels(cache, {"etcd3": "0.12.0", "tenacity": "9.2.1"})


def test_the_wheelhouse_lies_under_the_package_repositorys_server():
    url = "http://198.18.1.1:8081/wheels/"
    assert wheelhouse.directory(url, REPOSITORY, "198.18.1.1") == apt_repo.SERVED / "wheels"


@pytest.mark.parametrize(
    "url",
    [
        "http://198.18.1.1:8082/wheels/",
        "https://198.18.1.1:8081/wheels/",
        "http://198.18.1.1:8081/",
    ],
)
def test_a_wheelhouse_elsewhere_is_refused(url):
    with pytest.raises(LabError, match="paas:python:find_links"):
        wheelhouse.directory(url, REPOSITORY, "198.18.1.1")
