"""Every portal route, for every kind of user: the owner gets through, everyone else gets 404.

The routes are read from the URL patterns of the ``portal`` namespace, not listed by hand, so
a new route is tested the moment it exists. Its object ids come from ``OBJECT_KWARGS``; a route
taking an id not named there fails ``test_every_portal_route_is_covered`` until it is added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.api_keys import api_key_create
from accounts.models import ApiKey, Customer, User
from mailboxes.models import Domain, Mailbox, PlanChangeRequest

pytestmark = pytest.mark.django_db


def portal_routes() -> list[tuple[str, list[str]]]:
    """``(url name, its keyword arguments)`` for every pattern in the portal namespace."""
    resolver = get_resolver()
    portal = next(
        p for p in resolver.url_patterns if isinstance(p, URLResolver) and p.namespace == "portal"
    )
    routes = []
    for pattern in portal.url_patterns:
        assert isinstance(pattern, URLPattern), "nested includes: extend this walker"
        routes.append((pattern.name, sorted(pattern.pattern.converters)))
    return routes


ROUTES = portal_routes()
ROUTES_WITH_IDS = [(name, kwargs) for name, kwargs in ROUTES if kwargs]

# For each URL keyword: the owner's object and the other customer's, by fixture name.
OBJECT_KWARGS: dict[str, tuple[str, str]] = {
    "mailbox_id": ("mailbox", "other_mailbox"),
    "request_id": ("pending_request", "other_request"),
    "domain_id": ("own_domain", "other_domain"),
    "key_id": ("own_api_key", "other_api_key"),
}


@pytest.fixture
def own_api_key(mailbox: Mailbox) -> ApiKey:
    return api_key_create(name="own", customer=mailbox.domain.customer, actor="test").key


@pytest.fixture
def other_api_key(other_mailbox: Mailbox) -> ApiKey:
    return api_key_create(name="theirs", customer=other_mailbox.domain.customer, actor="test").key


@pytest.fixture
def own_domain(mailbox: Mailbox) -> Domain:
    return mailbox.domain


@pytest.fixture
def other_domain(other_mailbox: Mailbox) -> Domain:
    return other_mailbox.domain


def test_there_are_portal_routes() -> None:
    assert len(ROUTES) >= 8


def test_every_portal_route_is_covered() -> None:
    """A route with an object id this test does not know would go untested: name it here."""
    for name, kwargs in ROUTES:
        for kwarg in kwargs:
            assert kwarg in OBJECT_KWARGS, f"portal:{name} takes {kwarg}; add it to OBJECT_KWARGS"


def build_url(name: str, kwargs: list[str], whose: int, request: pytest.FixtureRequest) -> str:
    """The route's URL with the objects of the owner (``whose=0``) or the stranger (``1``)."""
    values = {k: request.getfixturevalue(OBJECT_KWARGS[k][whose]).pk for k in kwargs}
    return reverse(f"portal:{name}", kwargs=values)


def call(client: Client, method: str, url: str, htmx: bool) -> Any:
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    send: Callable[..., Any] = getattr(client, method)
    return send(url, **headers)


@pytest.fixture
def everything(
    mailbox: Mailbox,
    other_mailbox: Mailbox,
    pending_request: PlanChangeRequest,
    other_request: PlanChangeRequest,
) -> None:
    """Both customers have every kind of object, so a 404 never comes from a missing row."""


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(
    ("name", "kwargs"), ROUTES_WITH_IDS, ids=[name for name, _k in ROUTES_WITH_IDS]
)
def test_another_customers_objects_are_404(
    client: Client,
    stranger: User,
    everything: None,
    request: pytest.FixtureRequest,
    name: str,
    kwargs: list[str],
    htmx: bool,
) -> None:
    """The stranger asks for the owner's objects by id: the same 404 as a made-up id.

    A GET-only or POST-only route may answer the other method with 405 before looking at the
    id, which tells nothing; but then the method it does accept must be a 404.
    """
    client.force_login(stranger)
    url = build_url(name, kwargs, 0, request)
    statuses = {method: call(client, method, url, htmx).status_code for method in ("get", "post")}
    assert set(statuses.values()) <= {404, 405}, (url, statuses)
    assert 404 in statuses.values(), (url, statuses)
    mailbox = request.getfixturevalue("mailbox")
    before = Mailbox.objects.get(pk=mailbox.pk)
    assert before.refresh_requested_at is None  # a refresh POST did not get through
    assert PlanChangeRequest.objects.get(
        pk=request.getfixturevalue("pending_request").pk
    ).is_pending


@pytest.mark.parametrize(("name", "kwargs"), ROUTES, ids=[name for name, _k in ROUTES])
def test_the_owner_gets_every_route(
    client: Client,
    owner: User,
    everything: None,
    request: pytest.FixtureRequest,
    name: str,
    kwargs: list[str],
) -> None:
    client.force_login(owner)
    url = build_url(name, kwargs, 0, request)
    statuses = {method: getattr(client, method)(url).status_code for method in ("get", "post")}
    # 400: a POST without its form data; 302: an action that worked; 405: the other method.
    assert set(statuses.values()) <= {200, 302, 400, 405}, (url, statuses)
    assert statuses.keys() and {200, 302, 400} & set(statuses.values()), (url, statuses)


@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize(("name", "kwargs"), ROUTES, ids=[name for name, _k in ROUTES])
def test_staff_get_404_on_every_portal_route(
    client: Client,
    staff: User,
    everything: None,
    request: pytest.FixtureRequest,
    name: str,
    kwargs: list[str],
    htmx: bool,
) -> None:
    """Staff have their own pages; the portal shows a customer's view, and staff have none."""
    client.force_login(staff)
    url = build_url(name, kwargs, 0, request)
    for method in ("get", "post"):
        assert call(client, method, url, htmx).status_code == 404, (method, url)


@pytest.mark.parametrize(("name", "kwargs"), ROUTES, ids=[name for name, _k in ROUTES])
def test_anonymous_is_sent_to_login(
    client: Client, everything: None, request: pytest.FixtureRequest, name: str, kwargs: list[str]
) -> None:
    url = build_url(name, kwargs, 0, request)
    for method in ("get", "post"):
        response = getattr(client, method)(url)
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith(reverse("accounts:login") + "?next=")


def test_a_user_without_a_customer_gets_404(client: Client, everything: None) -> None:
    client.force_login(User.objects.create_user("niemand", password="x"))
    assert client.get(reverse("portal:overview")).status_code == 404


@pytest.mark.parametrize("name", [name for name, kwargs in ROUTES if not kwargs])
def test_pages_without_ids_show_only_own_data(
    client: Client,
    owner: User,
    customer: Customer,
    other_customer: Customer,
    everything: None,
    name: str,
) -> None:
    """Overview, settings, activity: the other customer's names and addresses never appear,
    while the owner's own do (a blank or broken page must not pass for a safe one)."""
    client.force_login(owner)
    response = client.get(reverse(f"portal:{name}"))
    assert response.status_code == 200
    html = response.content.decode()
    # The positive control: this page shows the owner's own data.
    assert customer.name in html or customer.contact_email in html
    assert other_customer.name not in html
    assert other_customer.contact_email not in html
    assert "fremde.example" not in html
    assert "fremd@example.org" not in html
