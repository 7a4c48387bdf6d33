"""Security headers Django does not set itself: a Content-Security-Policy.

Django's SecurityMiddleware and XFrameOptionsMiddleware already send
X-Content-Type-Options, Referrer-Policy, Cross-Origin-Opener-Policy and
X-Frame-Options (settings.py). Django 5.2 has no CSP, and the policy is one fixed
string, so a few lines here replace a dependency.

Scripts come only from our own static files: no inline script and no eval, so an
injected `<script>` in a trace's text cannot run even if escaping ever failed.
Styles allow inline attributes because plotly and htmx set them at run time; styles
cannot run code.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
