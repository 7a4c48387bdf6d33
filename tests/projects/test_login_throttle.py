"""Failed log-ins are limited per username and per address (projects/login_throttle.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from projects.models import LoginFailure

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_sixth_attempt_on_a_username_is_refused_with_429_even_with_the_right_password(world):
    client = Client()
    for _ in range(5):
        assert attempt(client, "owner", "wrong").status_code == 200  # the form, "wrong password"
    response = attempt(client, "owner", "pw-owner")
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert 14 * 60 <= int(response["Retry-After"]) <= 15 * 60 + 1
    assert "_auth_user_id" not in client.session
    # Another user from another address is not affected.
    assert attempt(Client(), "member", "pw-member", address="198.51.100.1").status_code == 302


def test_username_budget_ignores_case(world):
    client = Client()
    for name in ("Owner", "OWNER", "owner", "oWner", "ownER"):
        attempt(client, name, "wrong")
    assert attempt(client, "owner", "pw-owner").status_code == 429


def test_twenty_failures_from_one_address_block_it_for_every_username(world):
    client = Client()
    for i in range(20):
        assert attempt(client, f"guess-{i}", "wrong").status_code == 200
    assert attempt(client, "viewer", "pw-viewer").status_code == 429
    assert attempt(client, "viewer", "pw-viewer", address="198.51.100.2").status_code == 302


def test_failures_older_than_the_window_no_longer_count(world):
    client = Client()
    for _ in range(5):
        attempt(client, "owner", "wrong")
    LoginFailure.objects.update(created_at=timezone.now() - timedelta(minutes=16))
    assert attempt(client, "owner", "pw-owner").status_code == 302
    assert LoginFailure.objects.count() == 0, "a success clears the username's failures; old rows are pruned"


def test_success_clears_the_usernames_failures(world):
    client = Client()
    for _ in range(4):
        attempt(client, "owner", "wrong")
    assert attempt(client, "owner", "pw-owner").status_code == 302
    for _ in range(4):
        assert attempt(Client(), "owner", "wrong").status_code == 200
    assert attempt(Client(), "owner", "pw-owner").status_code == 302


def test_refused_attempts_do_not_extend_the_lock_out(world):
    client = Client()
    for _ in range(5):
        attempt(client, "owner", "wrong")
    for _ in range(3):
        assert attempt(client, "owner", "wrong").status_code == 429
    assert LoginFailure.objects.filter(username="owner").count() == 5


def test_admin_login_is_throttled_too(world, settings):
    """The admin's log-in form goes through the same backend: no password check while locked."""
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser("root", password="pw-root-long")
    client = Client()
    for _ in range(5):
        client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="203.0.113.9")
    assert LoginFailure.objects.filter(username="root").count() == 5
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "pw-root-long"}, REMOTE_ADDR="203.0.113.9"
    )
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert staff.is_superuser


def test_limits_come_from_settings(world, settings):
    settings.SPYGLASS_LOGIN_MAX_FAILURES_PER_USER = 2
    client = Client()
    attempt(client, "owner", "wrong")
    assert attempt(client, "owner", "pw-owner").status_code == 302
    attempt(client, "owner", "wrong")
    attempt(client, "owner", "wrong")
    assert attempt(client, "owner", "pw-owner").status_code == 429


def test_next_may_not_send_the_user_to_another_site(world):
    response = Client().post(
        "/login/?next=https://evil.example/steal", {"username": "owner", "password": "pw-owner"}
    )
    assert response.status_code == 302 and not response["Location"].startswith("https://evil.example")
