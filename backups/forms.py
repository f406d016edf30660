"""The restore form: what to restore and where to."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import ServiceForm

from .models import RestoreJob


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
        label=_("Into a new folder “Restored <date>”"),
        required=False,
        initial=True,
        help_text=_(
            "Leaves the current folders as they are. Otherwise messages go back into their "
            "original folders. Messages already there are never added twice."
        ),
    )

    def __init__(self, *args: Any, folders: list[tuple[str, int]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["folder"].choices = [("", "—")] + [
            (name, f"{name} ({count})") for name, count in folders
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("scope") == RestoreJob.Scope.FOLDER and not data.get("folder"):
            self.add_error("folder", _("Choose the folder to restore."))
        return data
