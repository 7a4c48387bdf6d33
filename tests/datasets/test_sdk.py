"""The SDK's spyglass.datasets against the real server (pytest-django's live server)."""

from __future__ import annotations

import pytest

from tests.helpers import ingest_trace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(world, live_server):
    # init() rather than SPYGLASS_* variables: an earlier test's init() in this process
    # would otherwise win over the environment with its own (deleted) project's key.
    import spyglass
    from spyglass import datasets

    spyglass.init(host=live_server.url, secret_key=world.key.secret_key, service_name="datasets-sdk-test")
    yield datasets
    spyglass.shutdown()


def test_create_add_get_through_the_sdk(sdk, world, monkeypatch):
    created = sdk.create("golden", description="hard ones")
    assert (created.name, created.version) == ("golden", 0)
    with pytest.raises(sdk.DatasetError) as taken:
        sdk.create("golden")
    assert taken.value.status == 409
    answer = sdk.add("golden", items=[{"input": "Where is my order?", "expected_output": "Checking."},
                                      {"input": [{"role": "user", "content": "Hi"}], "metadata": {"plan": "pro"}}])
    assert answer["version"] == 1 and answer["added"] == 2
    trace = ingest_trace(world.project, input="From production", attributes={"metadata": '{"plan": "pro"}'})
    assert sdk.add("golden", filter={"metadata.plan": "pro"})["added"] == 1
    with pytest.raises(sdk.DatasetError) as bad:
        sdk.add("golden", items=[{"input": ""}])
    assert bad.value.status == 400 and "items[0].input" in bad.value.detail
    monkeypatch.setattr(sdk, "_PAGE", 2)  # several pages
    current = sdk.get("golden")
    assert current.version == 2
    assert [i.input for i in current.items] == ["Where is my order?", [{"role": "user", "content": "Hi"}],
                                                "From production"]
    assert current.items[2].source_trace_id == trace.trace_id
    assert len(sdk.get("golden", version=1).items) == 2
    with pytest.raises(sdk.DatasetError) as missing:
        sdk.get("nope")
    assert missing.value.status == 404
