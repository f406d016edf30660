"""The staff page that moves a mailbox to another mail server: the form, the refusals, the
progress polled with htmx, and the audit entry."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, StaffRole, User
from mailboxes.models import Mailbox, MailboxMove
from tests.factories import make_mailbox, make_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(User.objects.create_user("hanna", is_staff=True, staff_role=StaffRole.ADMIN))
    return client


@pytest.fixture
def box() -> Mailbox:
    make_server("mx1")
    make_server("mx2")
    return make_mailbox("anna")


def test_staff_start_a_move_and_see_it_queued(
    admin_client: Client, box: Mailbox, sent_tasks: list, django_capture_on_commit_callbacks
) -> None:
    url = reverse("staff:mailbox_move", args=[box.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"target": "mx2"}, follow=True)
    assert response.status_code == 200
    assert "Moving anna@" in response.content.decode()
    move = MailboxMove.objects.get(mailbox=box)
    assert (move.source.name, move.target.name, move.state) == ("mx1", "mx2", "queued")
    assert ("mailboxes.move_mailbox", (move.pk,), {}) in sent_tasks
    entry = AuditEntry.objects.get(action="mailbox.move")
    assert entry.details == {"from_server": "mx1", "to_server": "mx2"}
    audit = admin_client.get(reverse("staff:audit_log")).content.decode()
    assert "move to another mail server started" in audit
    # While it runs the form is gone and the state polls itself.
    page = response.content.decode()
    assert "Waiting for a worker" in page and 'hx-trigger="every 1s"' in page
    assert "Start the move" not in page


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("mx1", "is on mx1 already"),
        ("nowhere", "There is no such mail server."),
    ],
)
def test_a_move_to_the_same_or_an_unknown_server_is_refused(
    admin_client: Client, box: Mailbox, target: str, message: str
) -> None:
    response = admin_client.post(reverse("staff:mailbox_move", args=[box.pk]), {"target": target})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not MailboxMove.objects.exists()


def test_a_second_move_while_one_runs_is_refused(
    admin_client: Client, box: Mailbox, sent_tasks: list
) -> None:
    url = reverse("staff:mailbox_move", args=[box.pk])
    admin_client.post(url, {"target": "mx2"})
    make_server("mx3")
    response = admin_client.post(url, {"target": "mx3"})
    assert response.status_code == 400
    assert "is being moved already" in response.content.decode()
    assert MailboxMove.objects.count() == 1


def test_htmx_gets_the_state_and_polling_stops_when_done(
    admin_client: Client, box: Mailbox, sent_tasks: list
) -> None:
    url = reverse("staff:mailbox_move", args=[box.pk])
    admin_client.post(url, {"target": "mx2"})
    running = admin_client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    assert "<h1>" not in running.content.decode()  # only the state
    MailboxMove.objects.update(state="done", messages_total=7)
    done = admin_client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling
    assert "7 messages copied and checked" in done.content.decode()
    page = admin_client.get(url).content.decode()
    assert "Start the move" in page  # another move may follow


def test_the_mailbox_page_links_to_the_move(admin_client: Client, box: Mailbox) -> None:
    page = admin_client.get(reverse("staff:mailbox_detail", args=[box.pk])).content.decode()
    assert reverse("staff:mailbox_move", args=[box.pk]) in page
