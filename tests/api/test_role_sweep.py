"""Every sub-account route, tried as each demo role: a role without the route's permission gets 403 naming
that permission; a role with it is never refused for lack of permission; nothing answers 500."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import app
from services.access import authenticate
from tests.api.test_rest import key_for
from tests.conftest import Demo

pytestmark = pytest.mark.integration
ROLES = {"Agency Admin": "admin@digitalmarketing.com", "Agency User": "sam@digitalmarketing.com",
         "Client Manager": "john@restaurant.com", "Client Staff": "jane@restaurant.com"}


def _permission(route: APIRoute) -> str | None:
    found = [getattr(d.call, "permission", None) for d in route.dependant.dependencies]
    return next((p for p in found if p), None)


def _routes(prefix: str = "/v1/sub-accounts/{sub_account_id}") -> list[tuple[str, str, str]]:
    out = []
    for included in app.routes:  # routers are mounted lazily: walk their routes with their full paths
        for context in getattr(included, "effective_route_contexts", list)():
            route, path = context.original_route, context.path
            if isinstance(route, APIRoute) and path.startswith(prefix):
                permission = _permission(route)
                assert permission, f"{path} has no permission dependency"
                out += [(method, path, permission) for method in sorted(route.methods)]
    return out


@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_gets_exactly_what_its_permissions_allow(role: str, demo: Demo) -> None:
    client = TestClient(app, raise_server_exceptions=False)
    headers = key_for(demo, ROLES[role])
    allowed = authenticate(headers["Authorization"].removeprefix("Bearer ")).permissions_in(demo.a)
    tried, refused = 0, 0
    for method, path, permission in _routes():
        url = path.replace("{sub_account_id}", str(demo.a))
        while "{" in url:  # ids of things that do not exist: the permission is checked first
            start = url.index("{")
            url = url[:start] + str(uuid.uuid4()) + url[url.index("}") + 1:]
        response = client.request(method, url, headers=headers, json={})
        body: Any = response.json() if "json" in response.headers.get("content-type", "") else {}
        assert response.status_code != 500, (role, method, path, response.text)
        if permission in allowed:
            assert response.status_code != 403 or body.get("permission") != permission, (role, method, path)
        else:
            assert response.status_code == 403 and body["permission"] == permission, (role, method, path)
            refused += 1
        tried += 1
    assert tried > 60
    if role == "Client Staff":
        assert refused > 10  # a narrow role really is narrow


@pytest.mark.parametrize("role", list(ROLES))
def test_agency_routes_need_the_agency_level_permission(role: str, demo: Demo) -> None:
    client = TestClient(app, raise_server_exceptions=False)
    headers = key_for(demo, ROLES[role])
    allowed = authenticate(headers["Authorization"].removeprefix("Bearer ")).agency_wide()
    tried = 0
    for method, path, permission in _routes("/v1/agency"):
        url = path
        while "{" in url:
            start = url.index("{")
            url = url[:start] + str(uuid.uuid4()) + url[url.index("}") + 1:]
        response = client.request(method, url, headers=headers, json={})
        assert response.status_code != 500, (role, method, path, response.text)
        refused = response.status_code == 403 and response.json().get("permission") == permission
        assert refused == (permission not in allowed), (role, method, path, response.status_code)
        tried += 1
    assert tried >= 6
