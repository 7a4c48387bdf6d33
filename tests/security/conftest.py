import pytest
from django.db import transaction

from tests.security.walk import Walk


@pytest.fixture(scope="module")
def walk(django_db_setup, django_db_blocker):
    """Built once per module inside a transaction rolled back at its end; each request of
    the walk runs in a savepoint of it (tests/security/walk.py)."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield Walk()
        transaction.set_rollback(True)
