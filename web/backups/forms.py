"""The restore forms: what to restore and where to."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from backups.models import RestoreJob
from mailboxes.models import Mailbox
from web.forms import ServiceForm

INTO_NEW_FOLDER_LABEL = _("Into a new folder “Restored <date>”")
INTO_NEW_FOLDER_HELP = _(
    "Leaves the current folders as they are. Otherwise messages go back into their "
    "original folders. Messages already there are never added twice."
)


def into_mailbox_field(targets: QuerySet[Mailbox]) -> forms.ModelChoiceField:
    """For the backup of a deleted mailbox: which of the customer's mailboxes it goes into."""
    return forms.ModelChoiceField(
        label=_("Into the mailbox"),
        queryset=targets,
        empty_label="—",
        help_text=_("The mailbox of this backup was deleted; any of yours can take it."),
    )


class RestoreForm(ServiceForm):
    scope = forms.ChoiceField(
        label=_("What"),
        choices=[
            (RestoreJob.Scope.MAILBOX, _("The whole mailbox")),
            (RestoreJob.Scope.FOLDER, _("One folder")),
        ],
        widget=forms.RadioSelect,
        initial=RestoreJob.Scope.MAILBOX,
    )
    folder = forms.ChoiceField(label=_("Folder"), required=False)
    into_new_folder = forms.BooleanField(
        label=INTO_NEW_FOLDER_LABEL, required=False, initial=True, help_text=INTO_NEW_FOLDER_HELP
    )

    def __init__(
        self,
        *args: Any,
        folders: list[tuple[str, int]],
        targets: QuerySet[Mailbox] | None = None,
        **kwargs: Any,
    ) -> None:
        """``targets``: for the backup of a deleted mailbox, the mailboxes it may go into."""
        super().__init__(*args, **kwargs)
        folder = self.fields["folder"]
        assert isinstance(folder, forms.ChoiceField)
        folder.choices = [("", "—")] + [(name, f"{name} ({count})") for name, count in folders]
        if targets is not None:
            self.fields["into_mailbox"] = into_mailbox_field(targets)
            self.order_fields(["into_mailbox"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("scope") == RestoreJob.Scope.FOLDER and not data.get("folder"):
            self.add_error("folder", _("Choose the folder to restore."))
        return data


class MessageKeysField(forms.Field):
    """The ticked messages of one folder, each ``uidvalidity:uid`` (``MessageSummary.key``)."""

    widget = forms.CheckboxSelectMultiple
    default_error_messages = {
        "required": _("Choose at least one message."),
        "invalid": _("The choice of messages was not understood. Please choose again."),
    }

    def to_python(self, value: Any) -> list[tuple[int, int]]:
        if not value:
            return []
        try:
            pairs = [str(item).split(":") for item in value]
            return [(int(validity), int(uid)) for validity, uid in pairs]
        except ValueError as exc:  # also a part too many or too few
            raise ValidationError(self.error_messages["invalid"], code="invalid") from exc


class MessagesRestoreForm(ServiceForm):
    """Restore the messages ticked on one page of a snapshot's folder."""

    folder = forms.CharField(widget=forms.HiddenInput)
    page = forms.IntegerField(widget=forms.HiddenInput, required=False)
    messages = MessageKeysField(label=_("Messages"))
    into_new_folder = forms.BooleanField(
        label=INTO_NEW_FOLDER_LABEL, required=False, initial=True, help_text=INTO_NEW_FOLDER_HELP
    )

    def __init__(self, *args: Any, targets: QuerySet[Mailbox] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if targets is not None:
            self.fields["into_mailbox"] = into_mailbox_field(targets)
