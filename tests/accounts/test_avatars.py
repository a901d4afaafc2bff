"""Uploaded avatars: only real pictures within the limits are kept, and what is served is a
small PNG made by Parley (never the uploaded bytes), with nosniff and a sandboxing CSP."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from accounts.avatars import AVATAR_MAX_BYTES, AVATAR_SIZE
from accounts.export import export_chunks
from accounts.models import Preference

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _picture(fmt: str = "PNG", size: tuple[int, int] = (300, 200), **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(out, format=fmt, **options)
    return out.getvalue()


def _upload(client: Client, data: bytes, name: str = "me.png"):
    return client.post("/account/avatar/", {"avatar": SimpleUploadedFile(name, data)})


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_a_picture_is_kept_and_served_as_a_small_png(alice, bob, fmt):
    response = _upload(_client(alice), _picture(fmt), name=f"me.{fmt.lower()}")
    assert response.status_code == 302
    served = _client(bob).get("/account/avatars/alice.png?v=1")
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert "immutable" in served["Cache-Control"]
    image = Image.open(io.BytesIO(served.content))
    assert image.format == "PNG" and image.size == (AVATAR_SIZE, AVATAR_SIZE)


def test_metadata_and_trailing_payloads_are_not_served(alice, bob):
    # A PNG with a script appended (a polyglot) and a text chunk: the served file has neither.
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "secret-location")
    data = _picture("PNG", pnginfo=info) + b"<script>alert(1)</script>"
    assert _upload(_client(alice), data).status_code == 302
    served = _client(bob).get("/account/avatars/alice.png").content
    assert b"<script>" not in served and b"secret-location" not in served


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "choose a picture"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not a PNG"),
        (b"GIF89a<script>alert(1)</script>", "not a PNG"),
        (_picture("BMP"), "not a PNG"),  # a real picture, but not an accepted type
        (_picture("PNG")[:60], "not a PNG"),  # truncated
        (b"\x89PNG" + b"\x00" * AVATAR_MAX_BYTES, "at most 1000 kB"),
    ],
    ids=["empty", "svg", "fake-gif", "bmp", "truncated", "too-big"],
)
def test_bad_uploads_are_refused_and_change_nothing(alice, data, reason):
    client = _client(alice)
    assert _upload(client, _picture()).status_code == 302
    before = bytes(Preference.objects.get(user=alice).avatar)
    response = _upload(client, data)
    assert response.status_code == 400
    assert reason in response.text
    assert bytes(Preference.objects.get(user=alice).avatar) == before


def test_a_decompression_bomb_is_refused(alice):
    bomb = _picture("PNG", size=(5000, 5000))  # 25 Mpx in a few kB
    response = _upload(_client(alice), bomb)
    assert response.status_code == 400 and "too many pixels" in response.text
    assert not Preference.objects.filter(user=alice, avatar__isnull=False).exists()


def test_remove_login_and_unknown(alice, bob):
    client = _client(alice)
    _upload(client, _picture())
    assert client.post("/account/avatar/", {"remove": "1"}).status_code == 302
    assert _client(bob).get("/account/avatars/alice.png").status_code == 404
    assert _client(bob).get("/account/avatars/nobody.png").status_code == 404
    assert Client().get("/account/avatars/alice.png").status_code == 302  # login first
    assert Client().post("/account/avatar/", {}).status_code == 302


def test_the_data_export_names_the_avatar_and_theme(alice):
    client = _client(alice)
    _upload(client, _picture())
    client.post("/account/theme/", {"theme": "dark"})
    profile = json.loads("".join(export_chunks(alice)))["profile"]  # what /account/export/ sends
    assert profile["theme"] == "dark"
    assert profile["avatar"].startswith("/account/avatars/alice.png?v=")


def test_the_room_page_looks_up_who_has_an_avatar(alice, bob):
    _upload(_client(alice), _picture())
    answer = _client(bob).get("/account/avatars/", {"user": ["alice", "bob", "nobody"]})
    assert answer.status_code == 200
    version = Preference.objects.get(user=alice).avatar_version
    assert answer.json() == {"avatars": {"alice": f"/account/avatars/alice.png?v={version}"}}
    assert Client().get("/account/avatars/", {"user": "alice"}).status_code == 302  # log in
