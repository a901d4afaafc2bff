"""Fixtures of the REST API tests: ``api(user)`` is a client of the user authenticated with a
real token or a real session (tests using it run with both)."""

from __future__ import annotations

import pytest

from tests.support.api import client_for


@pytest.fixture(params=["token", "session"])
def auth(request) -> str:
    return request.param


@pytest.fixture
def api(auth, db):
    """``api(user)``: an APIClient of ``user``, by token or by session (the ``auth`` param)."""
    return lambda user, **kwargs: client_for(user, auth, **kwargs)
