"""Room slugs are one address whatever their case, and the direct-message prefix is reserved
in any case (chat.actions.create_room, the page form, REST, and migration 0005)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from chat import actions
from chat.forms import RoomForm
from chat.models import Room
from tests.support.api import assert_error, token_client


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["Lobby", "LOBBY", "lobBY"])
def test_a_slug_differing_only_by_case_is_taken(lobby, alice, slug):
    with pytest.raises(actions.ActionError) as err:
        actions.create_room(creator=alice, slug=slug, title="Impostor")
    assert err.value.code == "already_exists"
    response = token_client(alice).post(
        "/api/rooms/", {"slug": slug, "title": "Impostor"}, format="json"
    )
    assert_error(response, 409, "already_exists")
    assert list(Room.objects.values_list("slug", flat=True)) == ["lobby"]


@pytest.mark.django_db
@pytest.mark.parametrize("slug", ["dm-1-2", "DM-1-2", "Dm-x", "dM-"])
def test_the_direct_prefix_is_reserved_in_any_case(alice, slug):
    with pytest.raises(actions.ActionError) as err:
        actions.create_room(creator=alice, slug=slug, title="Fake DM")
    assert err.value.code == "reserved_slug"
    assert_error(
        token_client(alice).post("/api/rooms/", {"slug": slug, "title": "x"}, format="json"),
        400,
        "reserved_slug",
    )
    assert not RoomForm({"slug": slug, "title": "x"}).is_valid()
    client = Client()
    client.force_login(alice)
    assert client.post("/rooms/", {"slug": slug, "title": "x"}).status_code == 400
    assert not Room.objects.exists()


@pytest.mark.django_db
def test_the_database_refuses_a_case_duplicate_too(lobby):
    """The constraint holds for writers that bypass the action (admin, shell)."""
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Room.objects.create(slug="LoBBy", title="Shell")


@pytest.mark.django_db(transaction=True)
def test_the_migration_renames_existing_clashes():
    executor = MigrationExecutor(connection)
    before = [("chat", "0004_outbox_pending_indexes")]
    executor.migrate(before)
    OldRoom = executor.loader.project_state(before).apps.get_model("chat", "Room")
    made = {
        slug: OldRoom.objects.create(slug=slug, title=slug).pk
        for slug in ["General", "general", "GENERAL", "Team", "TEAM", "DM-1-2", "dm-1-2", "ok"]
    }
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    slugs = dict(Room.objects.values_list("pk", "slug"))
    assert slugs[made["general"]] == "general"  # the lowercase one keeps its address
    assert slugs[made["General"]] == f"General-{made['General']}"
    assert slugs[made["GENERAL"]] == f"GENERAL-{made['GENERAL']}"
    assert slugs[made["Team"]] == "Team"  # no lowercase one: the oldest keeps it
    assert slugs[made["TEAM"]] == f"TEAM-{made['TEAM']}"
    assert slugs[made["dm-1-2"]] == "dm-1-2"
    assert slugs[made["DM-1-2"]] == f"renamed-{made['DM-1-2']}-DM-1-2"
    assert slugs[made["ok"]] == "ok"
    assert len({s.lower() for s in slugs.values()}) == len(slugs)
