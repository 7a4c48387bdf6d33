"""Shared fixtures: every test gets an owner, a member, a reviewer, a viewer and an
outsider (admin of another project), so permission checks are cheap to write."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from projects.models import Project, Role
from projects.services import IssuedKey, membership_set, project_create
from tests.helpers import ingest_trace, key_client
from tracing.models import Trace


@dataclass
class World:
    project: Project
    key: IssuedKey
    owner: object
    member: object
    reviewer: object
    viewer: object
    other_project: Project
    other_key: IssuedKey
    outsider: object


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # The production hasher is deliberately slow (~0.3 s a user); tests create many.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(username: str):
    return get_user_model().objects.create_user(username=username, password="pw-" + username)


@pytest.fixture
def world(db) -> World:
    owner = make_user("owner")
    project, key = project_create(name="Support Bot", owner=owner)
    member, reviewer, viewer = make_user("member"), make_user("reviewer"), make_user("viewer")
    membership_set(project=project, user=member, role=Role.MEMBER)
    membership_set(project=project, user=reviewer, role=Role.REVIEWER)
    membership_set(project=project, user=viewer, role=Role.VIEWER)
    outsider = make_user("outsider")
    other_project, other_key = project_create(name="Other Co", owner=outsider)
    return World(project, key, owner, member, reviewer, viewer, other_project, other_key, outsider)


@pytest.fixture
def api(world) -> APIClient:
    return key_client(world.key.secret_key)


@pytest.fixture
def trace(world) -> Trace:
    return ingest_trace(world.project, spans=3)
