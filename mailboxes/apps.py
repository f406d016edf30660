from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate
from django.utils.translation import gettext_lazy as _


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = _("Mailboxes")

    def ready(self) -> None:
        from django.core import checks

        from . import dovecot_view
        from .checks import check_mail_security

        checks.register(check_mail_security)

        # Once per migrate run: pre_migrate and post_migrate fire for every app, and the
        # handlers are idempotent, so registering them for this app alone is enough.
        pre_migrate.connect(dovecot_view.drop, sender=self, dispatch_uid="dovecot_view_drop")
        post_migrate.connect(dovecot_view.create, sender=self, dispatch_uid="dovecot_view_create")
