"""Accessibility in a real Chromium: what axe-core checks (tests/e2e/accessibility.py) and what
it cannot (focus rings, the usage bars' and chart's contrast, how text wraps)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.api_keys import api_key_create
from accounts.models import User
from tests.backups import helpers
from tests.backups.helpers import make_snapshot, message
from tests.e2e.accessibility import assert_accessible
from tests.e2e.test_portal import USER_PASSWORD, log_in
from tests.factories import make_customer, make_domain, make_mailbox, make_plan
from tests.twofactor import current_code, totp_device

COLOURS = """(el) => {
  const style = getComputedStyle(el);
  let background = "rgb(255, 255, 255)";
  for (let node = el.parentElement; node; node = node.parentElement) {
    const color = getComputedStyle(node).backgroundColor;
    if (!/^rgba\\(.*, 0\\)$/.test(color) && color !== "transparent") { background = color; break; }
  }
  return {border: style.borderTopColor, stroke: style.stroke, background};
}"""

pytestmark = [pytest.mark.e2e]

backup_keys = helpers.backup_keys
backup_settings = helpers.backup_settings
restore_side = helpers.restore_side


def contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two CSS colours as computed styles give them, rgb() or rgba()
    (an alpha below 1 is blended over white)."""

    def luminance(css: str) -> float:
        values = [float(v) for v in re.findall(r"[\d.]+", css)]
        alpha = values[3] if len(values) > 3 else 1.0
        channels = []
        for value in values[:3]:
            c = (value * alpha + 255 * (1 - alpha)) / 255
            channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# The focused element's ring: its colour, the colour around it (the nearest opaque background
# of its ancestors) and the first ancestor whose overflow would cut it off.
FOCUS_RING = """(el) => {
  const style = getComputedStyle(el);
  let background = "rgb(255, 255, 255)";
  for (let node = el.parentElement; node; node = node.parentElement) {
    const color = getComputedStyle(node).backgroundColor;
    if (!/^rgba\\(.*, 0\\)$/.test(color) && color !== "transparent") { background = color; break; }
  }
  const width = parseFloat(style.outlineWidth), offset = parseFloat(style.outlineOffset);
  const box = el.getBoundingClientRect(), grow = width + Math.max(offset, 0) - 0.5;
  let clippedBy = null;
  for (let node = el.parentElement; node && !clippedBy; node = node.parentElement) {
    const s = getComputedStyle(node);
    if (s.overflowX === "visible" && s.overflowY === "visible") continue;
    const clip = node.getBoundingClientRect();
    if (box.left - grow < clip.left || box.top - grow < clip.top
        || box.right + grow > clip.right || box.bottom + grow > clip.bottom) {
      clippedBy = node.tagName.toLowerCase() + "." + node.className;
    }
  }
  return {visible: el.matches(":focus-visible"), style: style.outlineStyle, width,
          color: style.outlineColor, background, clippedBy};
}"""


def assert_focus_ring_is_clear(page: Page, target: str) -> None:
    element = page.locator(target).first
    element.focus()
    ring = element.evaluate(FOCUS_RING)
    assert ring["visible"] and ring["style"] != "none" and ring["width"] >= 2, (target, ring)
    ratio = contrast(ring["color"], ring["background"])
    assert ratio >= 3, f"focus ring of {target}: {ratio:.2f}:1 ({ring})"
    assert ring["clippedBy"] is None, f"focus ring of {target} cut off: {ring}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_focus_rings_have_3_to_1_contrast_and_are_not_cut_off(
    page: Page,
    live_server,
    shop,
    scheme: str,  # type: ignore[no-untyped-def]
) -> None:
    """WCAG 1.4.11: the ring of a focused link, button, field, language button and disclosure
    stands out 3:1 from what is around it, in light and dark mode."""
    _customer, mailbox, _user = shop
    page.emulate_media(color_scheme=scheme)
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.press("Tab")  # keyboard use: what :focus-visible is for
    for target in (
        "button[name=language][value=en]",
        "button[name=language][value=de]",
        "#id_username",
        "button.button >> text=Log in",
        "a >> text=Forgot your password?",
    ):
        assert_focus_ring_is_clear(page, target)
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.goto(f"{live_server.url}/portal/mailboxes/{mailbox.pk}/")
    for target in ("a.brand", "nav a[aria-current=page]", "button.secondary", "summary"):
        assert_focus_ring_is_clear(page, target)
    page.goto(f"{live_server.url}/portal/mailboxes/{mailbox.pk}/plan/")
    assert_focus_ring_is_clear(page, "#id_plan")


@pytest.fixture
def shop(transactional_db: None):  # type: ignore[no-untyped-def]
    customer = make_customer("Bäckerei Müller")
    domain = make_domain(customer, "bäckerei-müller-zentrale.example")
    mailbox = make_mailbox("anna", domain=domain, plan=make_plan(name="IMAP Standard"))
    user = User.objects.create_user(
        "inhaber@example.org",
        email="inhaber@example.org",
        password=USER_PASSWORD,
        customer=customer,
    )
    return customer, mailbox, user


def test_small_links_and_disclosures_are_targets_of_24_px(
    page: Page,
    live_server,
    shop,
    restore_side,  # type: ignore[no-untyped-def]
) -> None:
    """WCAG 2.5.8: "Forgot your password?", "Back to the login" and the "Restore…" of each
    backup are 24 px high at least (axe's target-size rule)."""
    _customer, mailbox, _user = shop
    for _ in range(2):
        make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])]})
    page.goto(f"{live_server.url}/accounts/login/")
    assert_accessible(page, "login", rules=["target-size"])
    page.get_by_role("link", name="Forgot your password?").click()
    assert_accessible(page, "forgot password", rules=["target-size"])
    page.get_by_label("Your email address").fill("nobody@example.org")
    page.get_by_role("button", name="Send the link").click()
    assert_accessible(page, "link sent", rules=["target-size"])
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    page.goto(f"{live_server.url}/portal/backups/mailboxes/{mailbox.pk}/")
    expect(page.get_by_text("Restore…")).to_have_count(2)
    assert_accessible(page, "backups", rules=["target-size"])


def test_low_usage_shows_in_the_bar_and_the_chart(
    page: Page,
    live_server,
    shop,  # type: ignore[no-untyped-def]
) -> None:
    """13 MB of 5 GB, grown from 5 MB in a month: the bar shows a sliver inside an outline of
    3:1, the chart is scaled to the usage, so the growth shows, and its line stands out 3:1."""
    from datetime import timedelta

    from django.utils import timezone

    from mailboxes.models import GIB, MIB, Mailbox, UsageSample

    _customer, mailbox, _user = shop
    now = timezone.now()
    UsageSample.objects.bulk_create(
        UsageSample(mailbox=mailbox, taken_at=now - timedelta(days=30 - i),
                    used_bytes=(5 + i * 8 // 30) * MIB)
        for i in range(31)
    )  # fmt: skip
    Mailbox.objects.filter(pk=mailbox.pk).update(
        quota_bytes=5 * GIB, used_bytes=13 * MIB, usage_state="ok", usage_checked_at=now
    )
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    for url in ("/portal/", f"/portal/mailboxes/{mailbox.pk}/"):
        page.goto(f"{live_server.url}{url}")
        bar = page.locator(".usage-meter .bar").first
        fill = bar.locator(".bar-fill")
        assert (fill.bounding_box() or {"width": 0})["width"] >= 6, url
        colours = bar.evaluate(COLOURS)
        assert contrast(colours["border"], colours["background"]) >= 3, (url, colours)

    chart = page.locator(".chart svg")
    line = chart.locator(".chart-line")
    chart_box, line_box = chart.bounding_box(), line.bounding_box()
    assert chart_box and line_box
    assert line_box["height"] >= chart_box["height"] * 0.3, (chart_box, line_box)
    colours = line.evaluate(COLOURS)
    svg_background = chart.evaluate("el => getComputedStyle(el).backgroundColor")
    assert contrast(colours["stroke"], svg_background) >= 3, colours
    expect(page.locator(".chart-scale")).to_have_text("20.0\xa0MB")
    expect(page.locator(".chart-legend")).to_contain_text("the quota (5.0\xa0GB) is far above")


LINES = """(el) => {
  const lineHeight = parseFloat(getComputedStyle(el).lineHeight);
  const parts = [...el.querySelectorAll(".address-part")];
  return {
    lines: Math.round(el.getBoundingClientRect().height / lineHeight),
    brokenParts: parts.filter(part => part.getClientRects().length > 1
                                      || part.getBoundingClientRect().height > lineHeight * 1.5)
                      .map(part => part.textContent),
  };
}"""


def test_the_login_name_wraps_only_between_its_parts(
    page: Page,
    live_server,
    shop,  # type: ignore[no-untyped-def]
) -> None:
    """On one line at 1280 px; on a phone after the "@" or before a dot, never at a hyphen
    inside "xn--bckerei-mller-zentrale-…"; and copied, it is still the address."""
    _customer, mailbox, _user = shop
    assert "-" in mailbox.address and mailbox.address != mailbox.display_address
    log_in(page, live_server.url, "inhaber@example.org", USER_PASSWORD)
    url = f"{live_server.url}/portal/mailboxes/{mailbox.pk}/"
    for width, lines in ((1280, 1), (375, 2)):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(url)
        login_name = page.locator(".facts code")
        expect(login_name).to_have_text(mailbox.address)
        assert login_name.evaluate(LINES) == {"lines": lines, "brokenParts": []}, width


# Each visible select: the widest option's text and the room the closed select has for it.
SELECT_ROOM = """() => [...document.querySelectorAll("select")].filter(s => s.offsetParent)
  .map(s => {
    const style = getComputedStyle(s);
    const text = document.createElement("canvas").getContext("2d");
    text.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    const widest = [...s.options].reduce((a, o) => text.measureText(o.text).width > a[1]
                                         ? [o.text, text.measureText(o.text).width] : a, ["", 0]);
    const arrow = 20;
    const padding = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
    const room = s.clientWidth - padding - arrow;
    return {name: s.name, widest: widest[0], width: Math.ceil(widest[1]), room: Math.floor(room)};
  })"""


def test_plan_selects_show_their_whole_labels_at_1280_px(
    page: Page,
    live_server,
    shop,  # type: ignore[no-untyped-def]
) -> None:
    """ "IMAP Standard (IMAP, up to 20.0 GB)" and longer, on the staff mailbox page (four forms
    side by side cut it off), the staff customer page and the portal's plan page."""
    from mailboxes.models import GIB

    customer, mailbox, _user = shop
    make_plan(name="IMAP Business Plus", allows_pop3=True, max_quota_bytes=100 * GIB)
    device = totp_device(
        User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    for who, password, urls in (
        ("hanna", "Staff-Pass-2041",
         [f"/staff/mailboxes/{mailbox.pk}/", f"/staff/customers/{customer.pk}/"]),
        ("inhaber@example.org", USER_PASSWORD, [f"/portal/mailboxes/{mailbox.pk}/plan/"]),
    ):  # fmt: skip
        page.context.clear_cookies()
        log_in(page, live_server.url, who, password)
        if who == "hanna":  # staff pass the second step
            page.locator("input[name=code]").fill(current_code(device))
            page.locator("main form button[type=submit]").first.click()
        for language in ("EN", "DE"):
            page.get_by_role("button", name=re.compile(f"^{language}")).click()
            for url in urls:
                page.goto(f"{live_server.url}{url}")
                selects = page.evaluate(SELECT_ROOM)
                assert any(s["name"] == "plan" for s in selects), url
                cut = [s for s in selects if s["width"] > s["room"]]
                assert not cut, f"{url} ({language}): {cut}"


# --- Every page, in English and German ----------------------------------------------------


@pytest.fixture
def everything(shop, restore_side, sent_tasks):  # type: ignore[no-untyped-def]
    """A customer with what makes each page full: usage with history, folders and warnings,
    a pending plan request, backups with a running and a finished job, a deleted mailbox's
    backups, an invited user; and a staff login. Tasks are recorded, not sent."""
    from datetime import timedelta

    from django.utils import timezone

    from backups.models import BackupJob, JobStatus, RestoreJob
    from backups.services import repository_for
    from mailboxes.models import GIB, MIB, FolderUsage, Mailbox, QuotaWarning, UsageSample
    from mailboxes.plan_changes import plan_change_request
    from mailboxes.services import mailbox_delete

    customer, mailbox, user = shop
    now = timezone.now()
    Mailbox.objects.filter(pk=mailbox.pk).update(
        quota_bytes=500 * MIB, used_bytes=470 * MIB, message_count=1200, usage_state="ok",
        usage_checked_at=now,
    )  # fmt: skip
    UsageSample.objects.bulk_create(
        UsageSample(mailbox=mailbox, taken_at=now - timedelta(days=40 - i), used_bytes=i * 11 * MIB)
        for i in range(41)
    )
    for name, size in (("INBOX", 300), ("Archiv", 150), ("Gesendet", 20)):
        FolderUsage.objects.create(
            mailbox=mailbox, name=name, message_count=size, size_bytes=size * MIB, measured_at=now
        )
    QuotaWarning.objects.create(
        mailbox=mailbox, kind="warning", threshold=90, used_bytes=455 * MIB,
        quota_bytes=500 * MIB, recipient=customer.contact_email, language=customer.language,
        status="sent", sent_at=now,
    )  # fmt: skip
    make_mailbox("laden", domain=mailbox.domain, protocol="pop3")
    bigger = make_plan(name="IMAP Business", allows_pop3=True, max_quota_bytes=100 * GIB)
    plan_change_request(mailbox=mailbox, plan=bigger, note="Mehr Platz bitte", actor=user)
    snapshot = make_snapshot(
        mailbox, {"INBOX": [(message("Rechnung"), []), (message("Angebot"), ["\\Seen"])]}
    )
    make_snapshot(mailbox, {"INBOX": [(message("Rechnung"), [])], "Archiv": []})
    repository = repository_for(mailbox)
    running = BackupJob.objects.create(
        repository=repository, requested_by="inhaber@example.org", status=JobStatus.RUNNING,
        messages_total=10, messages_done=4, started_at=now,
    )  # fmt: skip
    RestoreJob.objects.create(
        repository=repository, snapshot=snapshot, scope="mailbox", requested_by="hanna",
        status=JobStatus.DONE, messages_total=2, messages_done=2, messages_restored=2,
        started_at=now, finished_at=now,
    )  # fmt: skip
    old = make_mailbox("alt", domain=mailbox.domain)
    make_snapshot(old, {"INBOX": [(message("Alte Post"), [])]})
    old_repository = repository_for(old)
    mailbox_delete(mailbox=old, actor="test")
    User.objects.create_user("hanna", password="Staff-Pass-2041", is_staff=True)
    api_key_create(name="Buchhaltung", customer=customer, actor="test")
    api_key_create(
        name="Billing", role="admin", read_only=False, allowed_networks=["203.0.113.0/24"],
        actor="test",
    )  # fmt: skip
    invited = User.objects.create_user("lena@example.org", email="lena@example.org",
                                       customer=customer)  # fmt: skip
    return mailbox, snapshot, running, old_repository, invited


def submit(page: Page, form: str) -> None:
    page.locator(form).locator("button[type=submit]").first.click()


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_page_and_state_in_english_and_german(
    page: Page,
    live_server,
    everything,
    language: str,  # type: ignore[no-untyped-def]
) -> None:
    """axe's WCAG 2.0-2.2 A and AA rules over every page the staff and customers see, and the
    states that matter: forms with errors, opened disclosures, htmx updates. German through
    the language switcher (it also overrides the customer's language)."""
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    mailbox, snapshot, running, old_repository, invited = everything
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 900})

    def check(state: str) -> None:
        expect(page.locator("html")).to_have_attribute("lang", language)
        assert_accessible(page, state)

    def visit(path: str, state: str) -> None:
        page.goto(f"{base}{path}")
        check(state)

    page.goto(f"{base}/accounts/login/")
    if language == "de":
        page.locator("button[name=language][value=de]").click()
    check("login")
    page.locator("#id_username").fill("inhaber@example.org")
    page.locator("#id_password").fill("not the password")
    submit(page, "main form")
    expect(page.locator(".errorlist")).to_be_visible()
    check("login refused")
    visit("/accounts/password/reset/", "forgot password")
    page.locator("#id_email").fill("lena@example.org")
    submit(page, "main form")
    check("link sent")
    visit("/accounts/password/reset/MQ/wrong-token/", "link expired")
    uid = urlsafe_base64_encode(force_bytes(invited.pk))
    visit(
        f"/accounts/password/reset/{uid}/{default_token_generator.make_token(invited)}/",
        "choose a password",
    )
    page.locator("#id_new_password1").fill("Sunny-Meadow-4471")
    page.locator("#id_new_password2").fill("Sunny-Meadow-4472")
    submit(page, "main form")
    expect(page.locator(".errorlist")).to_be_visible()
    check("passwords differ")
    page.locator("#id_new_password1").fill("Sunny-Meadow-4471")
    page.locator("#id_new_password2").fill("Sunny-Meadow-4471")
    submit(page, "main form")
    check("password saved")  # and logged in as the invited customer user

    visit("/portal/", "portal overview")
    visit(f"/portal/mailboxes/{mailbox.pk}/", "portal mailbox")
    page.locator("#main summary").first.click()
    check("portal mailbox, POP3 or IMAP explained")
    page.locator(f"#usage-{mailbox.pk} .chart-ranges a").click()
    expect(page.locator(f"#usage-{mailbox.pk} .chart-ranges [aria-current]")).to_contain_text("90")
    check("portal mailbox, 90 days")
    page.locator("#id_password").fill("short")
    page.locator("#id_password_again").fill("short")
    page.locator("#id_current_password").fill("Sunny-Meadow-4471")  # chosen above
    submit(page, f"#password-{mailbox.pk}")
    expect(page.locator(f"#password-{mailbox.pk} .errorlist").first).to_be_visible()
    check("portal mailbox password refused")
    visit(f"/portal/mailboxes/{mailbox.pk}/plan/", "portal plan")
    visit("/portal/settings/", "portal settings")
    page.locator("#id_contact_email").fill(mailbox.address)
    submit(page, "#settings-form")
    expect(page.locator("#settings-form .errorlist").first).to_be_visible()
    check("portal settings refused")
    visit("/portal/activity/", "portal activity")
    visit("/portal/api-keys/", "portal API keys")
    visit(f"/portal/backups/mailboxes/{mailbox.pk}/", "portal backups")
    page.locator(f"#snapshot-{snapshot.pk} summary").click()
    check("portal backups, restore opened")
    page.locator(f"#snapshot-{snapshot.pk} input[name$=scope][value=folder]").check()
    submit(page, f"#snapshot-{snapshot.pk} form:has(input[name$=scope])")  # not Download
    expect(page.locator(f"#snapshot-{snapshot.pk} .errorlist").first).to_be_visible()
    check("portal backups, restore refused")
    visit(f"/portal/backups/snapshots/{snapshot.pk}/messages/", "portal backup messages")
    visit(f"/portal/backups/jobs/backup/{running.pk}/", "portal backup job")
    visit(f"/portal/backups/repositories/{old_repository.pk}/", "portal deleted mailbox")

    device = totp_device(User.objects.get(username="hanna"))  # an app set up before
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    if language == "de":
        page.locator("button[name=language][value=de]").click()
    page.locator("#id_username").fill("hanna")
    page.locator("#id_password").fill("Staff-Pass-2041")
    submit(page, "main form")
    check("staff second step")
    page.locator("input[name=code]").fill(current_code(device))
    submit(page, "main form")
    check("staff dashboard")
    page.locator("#id_name").fill("Bäckerei Müller")
    page.locator("#id_contact_email").fill("x@example")  # the browser takes it, Django not
    submit(page, "form[action$='/customers/new/']")
    expect(page.locator("form[action$='/customers/new/'] .errorlist").first).to_be_visible()
    check("staff dashboard, customer refused")
    customer = mailbox.domain.customer
    visit(f"/staff/customers/{customer.pk}/", "staff customer")
    page.locator("#id_name").fill("not a domain")
    submit(page, "form[action$='/domains/new/']")
    expect(page.locator("form[action$='/domains/new/'] .errorlist").first).to_be_visible()
    check("staff customer, domain refused")
    page.locator("form[action$='/domains/new/'] #id_name").fill("filiale.example")
    submit(page, "form[action$='/domains/new/']")
    expect(page.locator(".messages")).to_be_visible()
    check("staff customer, domain added")
    visit(f"/staff/mailboxes/{mailbox.pk}/", "staff mailbox")
    page.locator("#id_quota").fill("999999999")
    submit(page, "form[action$='/quota/']")
    expect(page.locator("form[action$='/quota/'] .errorlist").first).to_be_visible()
    check("staff mailbox, quota refused")
    visit(f"/staff/mailboxes/{mailbox.pk}/delete/", "staff mailbox delete")
    visit("/staff/audit/", "staff audit log")
    visit("/staff/api-keys/", "staff API keys")
    visit("/staff/mailboxes/?sort=login", "staff mailboxes by last login")
    visit(f"/staff/backups/mailboxes/{mailbox.pk}/", "staff backups")
    visit(f"/staff/backups/snapshots/{snapshot.pk}/messages/", "staff backup messages")
