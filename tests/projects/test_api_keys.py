import base64

import pytest

from projects.auth import KeyAuthError, api_key_from_authorization
from projects.models import ApiKey, hash_secret
from projects.services import api_key_create, api_key_revoke


def basic(public: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()


def test_secret_is_stored_hashed_never_in_clear(world):
    key = ApiKey.objects.get(pk=world.key.key.pk)
    assert key.secret_hash == hash_secret(world.key.secret_key)
    assert world.key.secret_key not in {key.public_key, key.secret_hash, key.secret_hint, key.name}


def test_bearer_secret_resolves_to_its_project(world):
    key = api_key_from_authorization(f"Bearer {world.key.secret_key}")
    assert key.project == world.project


def test_basic_public_and_secret_resolve(world):
    key = api_key_from_authorization(basic(world.key.public_key, world.key.secret_key))
    assert key.project == world.project


def test_basic_with_another_projects_public_key_is_refused(world):
    with pytest.raises(KeyAuthError, match="Unknown API key"):
        api_key_from_authorization(basic(world.other_key.public_key, world.key.secret_key))


@pytest.mark.parametrize(
    "header, message",
    [
        (None, "Missing Authorization header"),
        ("", "Missing Authorization header"),
        ("Token abc", "Unsupported Authorization scheme"),
        ("Bearer ", "Empty secret key"),
        ("Bearer sk-sg-nope", "Unknown API key"),
        ("Basic !!!", "not valid base64"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "must be '<public key>:<secret key>'"),
    ],
)
def test_bad_authorization_is_explained(world, header, message):
    with pytest.raises(KeyAuthError, match=message):
        api_key_from_authorization(header)


def test_revoked_key_is_refused_and_says_so(world):
    api_key_revoke(project=world.project, key_id=world.key.key.pk)
    with pytest.raises(KeyAuthError, match="revoked"):
        api_key_from_authorization(f"Bearer {world.key.secret_key}")


def test_revoking_another_projects_key_is_not_found(world):
    from config.errors import NotFound

    with pytest.raises(NotFound):
        api_key_revoke(project=world.project, key_id=world.other_key.key.pk)
    assert ApiKey.objects.get(pk=world.other_key.key.pk).revoked_at is None


def test_last_used_at_is_recorded_once_per_window(world, django_assert_num_queries):
    api_key_from_authorization(f"Bearer {world.key.secret_key}")
    first = ApiKey.objects.get(pk=world.key.key.pk).last_used_at
    assert first is not None
    # Within the window the lookup is a single read, no write.
    with django_assert_num_queries(1):
        api_key_from_authorization(f"Bearer {world.key.secret_key}")


def test_each_key_gets_distinct_secrets(world):
    a = api_key_create(project=world.project, name="a")
    b = api_key_create(project=world.project, name="b")
    assert a.secret_key != b.secret_key and a.public_key != b.public_key
    assert a.secret_key.startswith("sk-sg-") and a.public_key.startswith("pk-sg-")


def test_revocation_takes_effect_on_the_very_next_request(world):
    """No cache between the key row and a request: revoked in the settings page, the
    secret key's next API call and the public key's next feedback are refused."""
    from django.test import Client

    from tests.helpers import key_client

    api = key_client(world.key.secret_key)
    assert api.get("/api/v1/traces").status_code == 200  # also sets last_used_at
    feedback = {"trace_id": "ab" * 16, "name": "thumbs", "value": True}
    public = Client(HTTP_X_SPYGLASS_PUBLIC_KEY=world.key.public_key)
    assert public.post("/api/v1/feedback", feedback, content_type="application/json").status_code == 201

    admin = Client()
    admin.force_login(world.owner)
    revoke = admin.post(f"/p/{world.project.slug}/settings/keys/{world.key.key.pk}/revoke/")
    assert revoke.status_code == 302

    response = api.get("/api/v1/traces")
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    response = public.post("/api/v1/feedback", feedback, content_type="application/json")
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]
    assert key_client(world.other_key.secret_key).get("/api/v1/traces").status_code == 200
