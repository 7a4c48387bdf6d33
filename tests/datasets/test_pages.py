"""Dataset pages: list/create, bulk-add from the explorer's filter, add a trace, upload, split."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from datasets import services
from datasets.models import Dataset, DatasetItem
from tests.helpers import ingest_trace
from tests.otlp_payloads import BASE_NS


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_explorer_links_to_bulk_add_with_its_filter_and_the_page_adds_only_those(world):
    for i in range(3):
        ingest_trace(world.project, input=f"pro {i}", start_ns=BASE_NS + i * 10**9,
                     attributes={"metadata": '{"plan": "pro"}'})
    ingest_trace(world.project, input="free", attributes={"metadata": '{"plan": "free"}'})
    member = _client(world.member)
    slug = world.project.slug
    explorer = member.get(f"/p/{slug}/traces/", {"meta": "plan=pro"}).content.decode()
    assert f'href="/p/{slug}/datasets/add/?metadata.plan=pro"' in explorer
    page = member.get(f"/p/{slug}/datasets/add/", {"metadata.plan": "pro"})
    assert page.status_code == 200 and "<strong>3</strong> traces match" in page.content.decode()
    response = member.post(f"/p/{slug}/datasets/add/?metadata.plan=pro", {"new_name": "pro-set", "limit": "2"})
    assert response.status_code == 302 and response["Location"].endswith("/datasets/pro-set/")
    dataset = Dataset.objects.get(name="pro-set")
    assert sorted(DatasetItem.objects.filter(dataset=dataset).values_list("input", flat=True)) == ["pro 1", "pro 2"]
    detail = member.get(response["Location"]).content.decode()
    assert "pro 2" in detail and "free" not in detail.split('id="items"')[1].split("</section>")[0]
    bad = member.post(f"/p/{slug}/datasets/add/?metadata.plan=pro&colour=red", {"dataset": "pro-set"})
    assert bad.status_code == 400 and "colour" in bad.content.decode()


def test_trace_page_button_adds_the_trace_for_members_only(world):
    trace = ingest_trace(world.project, input="Where is my refund?", output="Sent yesterday.")
    slug = world.project.slug
    assert "add-trace-to-dataset" in _client(world.member).get(f"/p/{slug}/traces/{trace.trace_id}/").content.decode()
    assert "add-trace-to-dataset" not in _client(world.viewer).get(
        f"/p/{slug}/traces/{trace.trace_id}/").content.decode()
    services.dataset_create(project=world.project, name="golden")
    response = _client(world.member).post(f"/p/{slug}/datasets/add-trace/{trace.trace_id}/", {"dataset": "golden"})
    assert response.status_code == 302
    item = DatasetItem.objects.get()
    assert (item.input, item.expected_output, item.source_trace_id) == ("Where is my refund?", "Sent yesterday.",
                                                                        trace.trace_id)
    none = _client(world.member).post(f"/p/{slug}/datasets/add-trace/{trace.trace_id}/", {})
    assert none.status_code == 400 and "Choose a dataset" in none.content.decode()


def test_upload_reports_the_bad_line_and_imports_nothing_then_a_good_file(world):
    services.dataset_create(project=world.project, name="golden")
    member = _client(world.member)
    url = f"/p/{world.project.slug}/datasets/golden/upload/"
    bad = SimpleUploadedFile("cases.jsonl", b'{"q": "a", "a": "x"}\n{"q": "b"}\n{"q": ""}\n')
    response = member.post(url, {"file": bad, "input_column": "q", "expected_column": "a"}, follow=True)
    assert "line 3" in response.content.decode() and "Nothing was imported" in response.content.decode()
    assert DatasetItem.objects.count() == 0
    good = SimpleUploadedFile("cases.csv", b"q,a,plan\nhello,hi,pro\nbye,,free\n")
    member.post(url, {"file": good, "input_column": "q", "expected_column": "a", "metadata_columns": "plan"})
    assert sorted(DatasetItem.objects.values_list("input", "metadata")) == [("bye", {"plan": "free"}),
                                                                           ("hello", {"plan": "pro"})]
    assert Dataset.objects.get().current_version == 1


def test_split_form_and_list_page(world):
    dataset = services.dataset_create(project=world.project, name="golden")
    services.items_add(dataset=dataset, items=[services.ItemIn(f"q{i}", metadata={"plan": "pro"}) for i in range(10)],
                       change={})
    member = _client(world.member)
    slug = world.project.slug
    member.post(f"/p/{slug}/datasets/golden/split/", {"test_fraction": "0.3", "stratify_by": "plan"})
    page = member.get(f"/p/{slug}/datasets/golden/").content.decode()
    assert "train 7 · test 3" in page and "stratified by plan" in page
    listing = _client(world.viewer).get(f"/p/{slug}/datasets/").content.decode()
    assert "golden" in listing and 'id="new-dataset"' not in listing
    assert member.post(f"/p/{slug}/datasets/", {"name": "add"}).status_code == 200  # reserved: form error
    assert not Dataset.objects.filter(name="add").exists()
