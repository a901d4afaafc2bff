"""Forms of the pages. They check input shape only; rules stay in chat.actions."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

from chat.actions import DIRECT_PREFIX, is_reserved_slug
from chat.models import Room


class SignUpForm(UserCreationForm):
    """Username and password twice (Django's rules and password validators)."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def clean_username(self) -> str:
        # Django refuses a name taken in any case (returning None); the placeholder's name is
        # refused even before its account exists.
        username = super().clean_username()
        if username and username.lower() == settings.PARLEY_DELETED_USER_NAME.lower():
            raise forms.ValidationError(_("This name is reserved."))
        return username


class RoomForm(forms.Form):
    slug = forms.SlugField(
        max_length=Room._meta.get_field("slug").max_length,
        label=_("Slug"),
        help_text=_("Letters, digits, - and _: the room's address."),
    )
    title = forms.CharField(max_length=Room._meta.get_field("title").max_length, label=_("Title"))
    is_private = forms.BooleanField(required=False, label=_("Private (members by invitation)"))

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if is_reserved_slug(slug):
            raise forms.ValidationError(
                _("Slugs starting “%(prefix)s” are reserved.") % {"prefix": DIRECT_PREFIX}
            )
        return slug


class InviteForm(forms.Form):
    """A username; whether it exists is the invite action's to tell (only to who may invite)."""

    username = forms.CharField(max_length=150, label=_("Username"))
