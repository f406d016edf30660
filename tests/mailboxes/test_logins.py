"""Copying Dovecot's last-login records onto the mailboxes, for the list's sort by last login."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes.logins import copy_last_logins
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_delete
from tests.factories import make_domain, make_mailbox, make_plan, make_server
from tests.mailboxes.test_last_login import NOW, created, login

pytestmark = pytest.mark.django_db


def last_login(mailbox: Mailbox):
    mailbox.refresh_from_db()
    return mailbox.last_login_at


def test_the_later_of_the_imap_and_pop3_logins_is_copied():
    plan = make_plan(allows_pop3=True)
    anna = created(make_mailbox("anna", plan=plan), NOW - timedelta(days=30))
    login(anna, "imap", NOW - timedelta(days=3))
    login(anna, "pop3", NOW - timedelta(days=1))

    assert copy_last_logins() == 1
    assert last_login(anna) == NOW - timedelta(days=1)


def test_only_newer_logins_are_written_again():
    anna = created(make_mailbox("anna"), NOW - timedelta(days=30))
    bob = created(make_mailbox("bob", domain=anna.domain), NOW - timedelta(days=30))
    login(anna, "imap", NOW - timedelta(days=2))
    login(bob, "imap", NOW - timedelta(days=2))
    assert copy_last_logins() == 2

    assert copy_last_logins() == 0  # nothing changed: nothing written
    login(bob, "imap", NOW)
    assert copy_last_logins() == 1
    assert (last_login(anna), last_login(bob)) == (NOW - timedelta(days=2), NOW)


def test_a_recreated_address_does_not_inherit_its_predecessors_logins():
    domain = make_domain()
    old = make_mailbox("anna", domain=domain)
    login(old, "imap", timezone.now() - timedelta(days=1))
    mailbox_delete(mailbox=old, actor="test")
    new = make_mailbox("anna", domain=domain)

    assert copy_last_logins() == 0
    assert last_login(new) is None


def test_one_server_at_a_time_leaves_the_others_for_their_own_poll():
    here = created(make_mailbox("anna"), NOW - timedelta(days=30))
    elsewhere_domain = make_domain()
    elsewhere_domain.mail_server = make_server("other")
    elsewhere_domain.save()
    elsewhere = make_mailbox("bob", domain=elsewhere_domain)
    Mailbox.objects.filter(pk=elsewhere.pk).update(
        mail_server=elsewhere_domain.mail_server, created_at=NOW - timedelta(days=30)
    )
    login(here, "imap", NOW)
    login(elsewhere, "imap", NOW)

    assert copy_last_logins(here.mail_server) == 1
    assert (last_login(here), last_login(elsewhere)) == (NOW, None)
