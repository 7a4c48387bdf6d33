"""Browser: the pages people live in (overview, explorer, a trace) run under the
Content-Security-Policy with no violation, and plotly still draws offline.

The page fixture already fails on a CSP message in the console; this test also listens to
the DOM's `securitypolicyviolation` events (which report what the console may not, e.g.
a blocked style attribute), and checks the headers of each document response.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import login
from tests.e2e.test_dashboards import traffic  # noqa: F401 - fixture
from tests.e2e.test_explorer import explorer_data  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


def _visit(page, path: str) -> None:
    response = page.goto(path)
    assert response.status == 200, path
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"], path
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff", path
    assert headers["referrer-policy"] == "same-origin", path


def test_overview_explorer_and_trace_page_run_without_csp_violations(page, world, traffic, explorer_data):  # noqa: F811
    rag, _ids = explorer_data
    page.add_init_script(RECORD_VIOLATIONS)
    login(page, "viewer", "pw-viewer")
    violations: dict[str, list[str]] = {}

    _visit(page, f"/p/{world.project.slug}/overview/")
    expect(page.locator("#chart-traces .main-svg").first).to_be_visible()  # plotly ran from our static files
    expect(page.locator("#chart-latency")).to_have_attribute("data-rendered", "true")
    expect(page.get_by_text("Loading alert states")).to_have_count(0)  # htmx panels loaded too
    violations["overview"] = page.evaluate("window.__cspViolations")

    _visit(page, f"/p/{world.project.slug}/traces/")
    expect(page.locator("table.traces tbody tr").first).to_be_visible()
    page.fill("#f-q", "parcel")
    page.press("#f-q", "Enter")  # an htmx swap under the policy
    page.wait_for_url("**q=parcel**")
    expect(page.locator("table.traces tbody tr")).to_have_count(1)
    violations["explorer"] = page.evaluate("window.__cspViolations")

    _visit(page, f"/p/{world.project.slug}/traces/{rag.trace_id}/")
    expect(page.locator(".wf-bar").first).to_be_visible()  # the waterfall's bars are placed and sized
    violations["trace"] = page.evaluate("window.__cspViolations")

    assert {where: found for where, found in violations.items() if found} == {}
