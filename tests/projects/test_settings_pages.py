"""Project settings page (projects/views.py): API keys, members and roles, name. Admin only."""

from __future__ import annotations

import pytest
from django.test import Client

from projects.auth import api_key_from_authorization
from projects.models import ApiKey, Membership, Role


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(world, suffix: str = "") -> str:
    return f"/p/{world.project.slug}/settings/{suffix}"


@pytest.mark.parametrize("who", ["member", "reviewer", "viewer"])
def test_settings_are_admin_only(world, who):
    client = login(getattr(world, who))
    response = client.get(url(world))
    assert response.status_code == 403
    assert client.post(url(world, "keys/"), {"name": "sneaky"}).status_code == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_settings_of_another_project_are_404(world):
    assert login(world.outsider).get(url(world)).status_code == 404


def test_secret_is_shown_once_then_never_again(world):
    client = login(world.owner)
    response = client.post(url(world, "keys/"), {"name": "backend"})
    assert response.status_code == 302 and response["Location"] == url(world)

    page = client.get(url(world)).content.decode()
    secret = page.split('id="secret-value">', 1)[1].split("<", 1)[0]
    assert secret.startswith("sk-sg-") and "will not be shown again" in page
    key = api_key_from_authorization(f"Bearer {secret}")
    assert key.name == "backend" and key.created_by == world.owner

    again = client.get(url(world)).content.decode()
    assert secret not in again and "backend" in again and key.secret_hint in again


def test_revoke_key_and_see_it_marked(world):
    client = login(world.owner)
    response = client.post(url(world, f"keys/{world.key.key.pk}/revoke/"))
    assert response.status_code == 302
    world.key.key.refresh_from_db()
    assert world.key.key.revoked_at is not None
    assert "revoked" in client.get(url(world)).content.decode()


def test_revoking_another_projects_key_is_refused(world):
    client = login(world.owner)
    client.post(url(world, f"keys/{world.other_key.key.pk}/revoke/"), follow=True)
    world.other_key.key.refresh_from_db()
    assert world.other_key.key.revoked_at is None


def test_actions_need_post_and_csrf(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    assert client.get(url(world, "keys/")).status_code == 405
    assert client.post(url(world, "keys/"), {"name": "x"}).status_code == 403
    assert not ApiKey.objects.filter(name="x").exists()


def test_add_member_change_role_and_remove(world):
    from tests.conftest import make_user

    newcomer = make_user("newcomer")
    client = login(world.owner)
    page = client.post(url(world, "members/"), {"username": "newcomer", "role": "reviewer"}, follow=True)
    assert "Added newcomer as reviewer" in page.content.decode()
    membership = Membership.objects.get(project=world.project, user=newcomer)
    assert membership.role == Role.REVIEWER

    client.post(url(world, f"members/{membership.pk}/role/"), {"role": "member"})
    membership.refresh_from_db()
    assert membership.role == Role.MEMBER

    client.post(url(world, f"members/{membership.pk}/remove/"))
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_unknown_username_is_explained(world):
    page = login(world.owner).post(url(world, "members/"), {"username": "ghost", "role": "viewer"}, follow=True)
    assert "No user named &#x27;ghost&#x27;" in page.content.decode()


def test_last_admin_cannot_be_demoted_or_removed(world):
    client = login(world.owner)
    mine = Membership.objects.get(project=world.project, user=world.owner)

    page = client.post(url(world, f"members/{mine.pk}/role/"), {"role": "viewer"}, follow=True).content.decode()
    assert "last admin" in page
    page = client.post(url(world, f"members/{mine.pk}/remove/"), follow=True).content.decode()
    assert "last admin" in page
    mine.refresh_from_db()
    assert mine.role == Role.ADMIN

    # With a second admin, the first may step down.
    member = Membership.objects.get(project=world.project, user=world.member)
    client.post(url(world, f"members/{member.pk}/role/"), {"role": "admin"})
    client.post(url(world, f"members/{mine.pk}/role/"), {"role": "viewer"})
    mine.refresh_from_db()
    assert mine.role == Role.VIEWER


def test_members_of_another_project_cannot_be_touched(world):
    foreign = Membership.objects.get(project=world.other_project, user=world.outsider)
    client = login(world.owner)
    client.post(url(world, f"members/{foreign.pk}/remove/"))
    client.post(url(world, f"members/{foreign.pk}/role/"), {"role": "viewer"})
    foreign.refresh_from_db()
    assert foreign.role == Role.ADMIN


def test_rename_project(world):
    client = login(world.owner)
    client.post(url(world, "name/"), {"name": "Support Bot EU"})
    world.project.refresh_from_db()
    assert world.project.name == "Support Bot EU" and world.project.slug == "support-bot"
    page = client.post(url(world, "name/"), {"name": "   "}, follow=True).content.decode()
    assert "name" in page and "required" in page.lower()


def test_settings_page_query_count_is_bounded(world, django_assert_max_num_queries):
    from projects.services import api_key_create

    for i in range(10):
        api_key_create(project=world.project, created_by=world.owner, name=f"k{i}")
    client = login(world.owner)
    with django_assert_max_num_queries(9):
        assert client.get(url(world)).status_code == 200


def test_another_projects_key_or_member_in_my_url_is_404_and_untouched(world):
    """Found by the route walk (tests/security): these answered 302 with a message."""
    foreign = Membership.objects.get(project=world.other_project, user=world.outsider)
    client = login(world.owner)
    assert client.post(url(world, f"keys/{world.other_key.key.pk}/revoke/")).status_code == 404
    assert client.post(url(world, f"members/{foreign.pk}/remove/")).status_code == 404
    assert client.post(url(world, f"members/{foreign.pk}/role/"), {"role": "viewer"}).status_code == 404
    foreign.refresh_from_db()
    world.other_key.key.refresh_from_db()
    assert foreign.role == Role.ADMIN and world.other_key.key.revoked_at is None
