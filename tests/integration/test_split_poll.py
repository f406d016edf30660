"""One server's poll split over parallel doveadm API requests measures exactly what one
request does, against the real Dovecot."""

from __future__ import annotations

import json
import subprocess

import pytest

from mailboxes import usage
from mailboxes.models import FolderUsage, Mailbox, MailServer, PollRun, UsageSample
from tests.factories import make_domain, make_mailbox
from tests.integration.test_polling import dovecot_view_without, fill_folders, message

pytestmark = pytest.mark.integration


def stored() -> dict[str, tuple]:  # type: ignore[type-arg]
    """What a poll left behind, per address: totals, state, folders and the run's sample."""
    return {
        m.address: (
            m.used_bytes,
            m.message_count,
            m.usage_state,
            m.usage_error,
            sorted(
                FolderUsage.objects.filter(mailbox=m).values_list(
                    "name", "message_count", "size_bytes"
                )
            ),
            list(
                UsageSample.objects.filter(mailbox=m, run__isnull=False).values_list(
                    "used_bytes", "message_count"
                )
            ),
        )
        for m in Mailbox.objects.all()
    }


def poll() -> None:
    usage.poll_server(usage.schedule_polls()[0].pk)


def dovecot_all_users(dovecot) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Every user's messages and bytes as ``doveadm mailbox status -A`` adds them up."""
    out = subprocess.run(
        [
            "doveadm",
            "-c",
            str(dovecot.config_file),
            "-f",
            "json",
            "mailbox",
            "status",
            "-A",
            "messages vsize",
            "*",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    totals: dict[str, tuple[int, int]] = {}
    for row in json.loads(out):
        messages, size = totals.get(row["username"], (0, 0))
        totals[row["username"]] = (messages + int(row["messages"]), size + int(row["vsize"]))
    return totals


def test_a_poll_split_over_parallel_requests_stores_what_one_request_reads(
    dovecot, mail_server, deliver, settings
):
    MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=dovecot.doveadm_port)
    domain = make_domain()
    boxes = [make_mailbox(f"u{i}", domain=domain) for i in range(7)]
    fill_folders(dovecot, boxes[0].address)
    for i, box in enumerate(boxes[1:5]):
        deliver(box.address, message(f"hello {i}", 5_000 * (i + 1)))
    ghost = make_mailbox("ghost", domain=domain)

    with dovecot_view_without(ghost.address):
        # Split: one request per user mask (u0..u6, ghost: 8 masks), 3 at once.
        settings.POSTAMT_POLL_DOVEADM_REQUESTS = 3
        poll()
        split = stored()
        # One request for every user: the poll as it was before the split.
        settings.POSTAMT_POLL_DOVEADM_REQUESTS = 1
        PollRun.objects.all().delete()  # a second run in this slot (the samples stay)
        poll()
        single = stored()
        reference = dovecot_all_users(dovecot)

    assert split == single
    assert split[ghost.address][2:4] == (
        Mailbox.UsageState.DRIFT,
        "the mail server does not know this mailbox",
    )
    measured = {a: (f[1], f[0]) for a, f in split.items() if a != ghost.address}
    # Dovecot's own sums over all users, folder by folder; it lists no folder (and so no
    # row) for a mailbox that never received mail, which Postamt stores as empty.
    assert measured == {**dict.fromkeys(measured, (0, 0)), **reference}
    assert measured[boxes[0].address][0] == 3 and measured[boxes[4].address][0] == 1
    assert split[boxes[6].address][4] == []


def test_masks_measure_every_user_exactly_once(dovecot, mail_server, deliver, settings):
    """Local parts starting with digits, with dots, in mixed case (as Dovecot lists them),
    under a punycode domain, and sharing last characters across domains."""
    MailServer.objects.filter(pk=mail_server.pk).update(doveadm_port=dovecot.doveadm_port)
    idn, plain = make_domain(name="xn--mnchen-3ya.test"), make_domain(name="plain.test")
    boxes = [
        make_mailbox(local_part, domain=domain)
        for local_part, domain in [
            ("1st", idn),
            ("42", idn),
            ("42", plain),
            ("first.last", idn),
            ("x.2", plain),
            ("0", plain),
            ("a-", plain),
            ("b_", idn),
            ("mixed", plain),
        ]
    ]
    for i, box in enumerate(boxes):
        deliver(box.address, message(f"hello {i}", 1_000 * (i + 1)))
    # Dovecot lists this one as stored: upper case, matched by the lower-case mask "*d@*".
    Mailbox.objects.filter(pk=boxes[-1].pk).update(address="MiXeD@plain.test")
    addresses = [a for a in Mailbox.objects.values_list("address", flat=True)]
    settings.POSTAMT_POLL_DOVEADM_REQUESTS = 2

    masks = usage.user_masks(addresses, 2)
    assigned = [a for _mask, group in masks for a in group]
    assert sorted(assigned) == sorted(addresses)
    assert {mask for mask, _group in masks} >= {"*t@*", "*2@*", "*-@*", "*_@*", "*d@*"}

    poll()
    run = PollRun.objects.get()
    assert run.mailboxes_done == len(boxes) and run.mailboxes_failed == 0
    split = stored()
    assert all(len(state[5]) == 1 for state in split.values())  # one sample each
    assert {s[2] for s in split.values()} == {Mailbox.UsageState.OK}
    # Dovecot finds the renamed user's mail under its new name: none, and so no row.
    measured = {a: (s[1], s[0]) for a, s in split.items()}
    assert measured == {**dict.fromkeys(measured, (0, 0)), **dovecot_all_users(dovecot)}
    assert sum(count > 0 for count, _size in measured.values()) == len(boxes) - 1

    settings.POSTAMT_POLL_DOVEADM_REQUESTS = 1
    PollRun.objects.all().delete()
    poll()
    assert stored() == split
