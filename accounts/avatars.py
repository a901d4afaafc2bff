"""Uploaded avatar pictures: checked by decoding, never stored or served as uploaded.

An upload must be at most ``AVATAR_MAX_BYTES``, decode as PNG, JPEG, GIF or WebP, and have at
most ``AVATAR_MAX_PIXELS`` pixels (decoding is refused before a huge image is expanded in
memory). It is then cut to a centred square, scaled to ``AVATAR_SIZE`` pixels and re-encoded
as PNG without metadata: the bytes served are always a small PNG made here, so a polyglot file,
a script or an EXIF location in the upload never reaches another reader.
"""

from __future__ import annotations

import io
import warnings

from django.urls import reverse
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from accounts.models import Preference

AVATAR_MAX_BYTES = 1_000_000
AVATAR_MAX_PIXELS = 16_000_000
AVATAR_SIZE = 128
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")


class AvatarRefused(ValueError):
    """The upload is not an acceptable picture; the message says why."""


def normalise(data: bytes) -> bytes:
    """The avatar PNG made from the uploaded ``data``. Raises AvatarRefused."""
    if not data:
        raise AvatarRefused(_("choose a picture to upload"))
    if len(data) > AVATAR_MAX_BYTES:
        raise AvatarRefused(_("a picture is at most %(kb)s kB") % {"kb": AVATAR_MAX_BYTES // 1000})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            if image.width * image.height > AVATAR_MAX_PIXELS:
                raise AvatarRefused(_("the picture has too many pixels"))
            image.load()
    except AvatarRefused:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise AvatarRefused(_("the file is not a PNG, JPEG, GIF or WebP picture")) from exc
    square = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGBA"), (AVATAR_SIZE,) * 2)
    out = io.BytesIO()
    square.save(out, format="PNG", optimize=True)
    return out.getvalue()


def avatar_urls(usernames: list[str]) -> dict[str, str]:
    """The avatar URL (versioned, cacheable for good) of each of ``usernames`` who has one."""
    rows = Preference.objects.filter(
        user__username__in=usernames, avatar__isnull=False
    ).values_list("user__username", "avatar_version")
    return {
        name: f"{reverse('avatar', kwargs={'username': name})}?v={version}"
        for name, version in rows
    }
