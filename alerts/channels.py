"""What an alert says and how it reaches each channel.

    notification_body(...)        the one JSON body every channel is built from
    explorer_url(...)             the explorer filtered to the rule's traces (and group)
    webhook_request(body, secret) bytes + headers, X-Spyglass-Signature = HMAC-SHA256
    slack_payload(body)           Slack incoming-webhook JSON (text + blocks)
    email_message(body)           subject, text
    channel_send(channel, body, secret)   one attempt; raises DeliveryFailed

Timeouts are short (SPYGLASS_ALERTS_HTTP_TIMEOUT_SECONDS): a slow receiver costs one
worker a few seconds, and each channel has its own task, so it never holds up another.

Targets are checked against server-side request forgery: only http(s); the host is
resolved and every address it resolves to must be public (not private, loopback,
link-local, multicast, reserved or unspecified) unless
SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS is set; and the request goes to the address that
was checked (Host header and TLS name stay the URL's), so a DNS answer that changes
between the check and the connection cannot send it elsewhere. No redirects are followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.mail import send_mail

from alerts.models import AlertChannel, AlertRule, ChannelKind, State
from dashboards.metrics import METADATA_PREFIX, measure_unit

SIGNATURE_HEADER = "X-Spyglass-Signature"
USER_AGENT = "Spyglass-Alerts/1"
URL_MAX = 2000
# Exact-value dimensions whose explorer filter has the same name.
_SAME_NAME = ("model", "environment", "release", "name", "user_id")


class DeliveryFailed(Exception):
    """One attempt failed; `transient` says whether a retry may cure it (timeouts,
    refused connections, 429 and 5xx) or not (a 404, a bad address)."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


def url_problem(url: str) -> str | None:
    """Why a webhook URL is refused, or None. Only http(s) with a host: a file:// or
    gopher:// target would make the server read or speak things it should not."""
    if len(url) > URL_MAX:
        return f"at most {URL_MAX} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "only http:// and https:// URLs are accepted"
    if not parts.hostname:
        return "the URL needs a host"
    return None


def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def target_addresses(url: str) -> list[str]:
    """Every address the URL's host resolves to (a literal address: itself). OSError if
    the name does not resolve."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def target_address_problem(url: str, *, resolve_failure_ok: bool = False) -> str | None:
    """Why the URL's host may not be contacted, or None. With `resolve_failure_ok` (form
    time), a name that does not resolve now is accepted: delivery resolves again and
    reports it."""
    if settings.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS:
        return None
    try:
        addresses = target_addresses(url)
    except (OSError, UnicodeError):
        return None if resolve_failure_ok else f"the host {urlsplit(url).hostname} does not resolve"
    refused = [a for a in addresses if _address_refused(a)]
    if refused:
        return (f"the host resolves to a private, loopback or link-local address ({', '.join(refused)}); "
                "set SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS=1 to allow internal receivers")
    return None


def _pinned(url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL with the checked address as host, extra headers, httpx extensions) so the
    connection goes where the check looked. Raises DeliveryFailed if the check fails."""
    parts = urlsplit(url)
    if settings.SPYGLASS_ALERTS_ALLOW_PRIVATE_TARGETS:
        return url, {}, {}
    try:
        addresses = target_addresses(url)
    except (OSError, UnicodeError):
        raise DeliveryFailed(f"the host {parts.hostname} does not resolve", transient=True) from None
    refused = [a for a in addresses if _address_refused(a)]
    if refused or not addresses:
        raise DeliveryFailed(f"refused: {parts.hostname} resolves to a private, loopback or link-local address "
                             f"({', '.join(refused)})", transient=False)
    address = addresses[0]
    host = f"[{address}]" if ":" in address else address
    netloc = host + (f":{parts.port}" if parts.port else "")
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    host_header = parts.hostname + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return pinned, {"Host": host_header}, extensions


def window_text(seconds: int) -> str:
    """7d, 24h, 90m: days only from two days up (a "rolling 24 h" reads as hours)."""
    if seconds % 86400 == 0 and seconds >= 2 * 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def group_filter(group: dict) -> list[tuple[str, str]]:
    """Explorer filter parameters selecting one group's traces (a missing value has no
    filter, so that link shows the rule's traces)."""
    pairs: list[tuple[str, str]] = []
    for dim, value in group.items():
        if value is None:
            continue
        if dim in _SAME_NAME:
            pairs.append((dim, value))
        elif dim == "tag":
            pairs.append(("tag", value))
        elif dim == "prompt":
            name, at, version = value.rpartition("@")
            pairs += [("prompt", name), ("prompt_version", version)] if at else [("prompt", value)]
        elif dim.startswith(METADATA_PREFIX):
            pairs.append((dim, value))
    return pairs


def explorer_url(*, rule: AlertRule, group: dict, start: datetime, end: datetime) -> str:
    from alerts.evaluation import rule_filter

    pairs = [*rule_filter(rule.filters).to_query(), *group_filter(group), ("from", start.isoformat()),
             ("to", end.isoformat())]
    return f"{settings.SPYGLASS_BASE_URL}/p/{rule.project.slug}/traces/?{urlencode(pairs)}"


def notification_body(*, rule: AlertRule, group: dict, state: str, previous_state: str, value: float | None, n: int,
                      now: datetime, event_id: int | None, test: bool = False) -> dict:
    """The JSON every channel is built from (the webhook sends it as is)."""
    start = now - timedelta(seconds=rule.window_seconds)
    threshold = rule.warning_threshold if state == State.WARNING else rule.alert_threshold
    return {
        "test": test,
        "event_id": event_id,
        "project": rule.project.slug,
        "rule": {"id": rule.pk, "name": rule.name, "measure": rule.measure, "agg": rule.agg,
                 "filters": rule.filters, "group_by": rule.group_by or None},
        "group": group,
        "state": state,
        "previous_state": previous_state,
        "value": value,
        "n": n,
        "unit": measure_unit(rule.measure, rule.agg),
        "operator": rule.operator,
        "threshold": threshold,
        "warning_threshold": rule.warning_threshold,
        "alert_threshold": rule.alert_threshold,
        "window": window_text(rule.window_seconds),
        "window_seconds": rule.window_seconds,
        "window_start": start.isoformat(),
        "window_end": now.isoformat(),
        "explorer_url": explorer_url(rule=rule, group=group, start=start, end=now),
        "rule_url": f"{settings.SPYGLASS_BASE_URL}/p/{rule.project.slug}/alerts/{rule.pk}/",
    }


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_request(body: dict, secret: str) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return raw, {"Content-Type": "application/json", "User-Agent": USER_AGENT, SIGNATURE_HEADER: signature(raw, secret)}


def headline(body: dict) -> str:
    group = ", ".join(f"{k}={v}" for k, v in body["group"].items())
    value = "no value" if body["value"] is None else f"{body['value']:.6g} {body['unit']}"
    what = f"{body['rule']['agg']}({body['rule']['measure']})"
    prefix = "[TEST] " if body["test"] else ""
    state = State(body["state"]).label.upper()
    return (f"{prefix}{state}: {body['rule']['name']}{f' [{group}]' if group else ''} — {what} = {value} "
            f"over {body['window']} (threshold {body['operator']} {body['threshold']:g}, was "
            f"{State(body['previous_state']).label.lower()})")


def slack_payload(body: dict) -> dict:
    """Slack's incoming-webhook format (Mattermost, Rocket.Chat and Discord's /slack accept it)."""
    text = headline(body)
    links = f"<{body['explorer_url']}|Open the traces> · <{body['rule_url']}|Rule> · n = {body['n']}"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": links}]},
        ],
    }


def email_message(body: dict) -> tuple[str, str]:
    lines = [
        headline(body), "",
        f"Project: {body['project']}",
        f"Rule: {body['rule']['name']} ({body['rule_url']})",
        f"Query: {body['rule']['agg']} of {body['rule']['measure']}"
        + (f" where {body['rule']['filters']}" if body["rule"]["filters"] else ""),
        f"Group: {json.dumps(body['group']) if body['group'] else '(whole project)'}",
        f"Value: {body['value']} {body['unit']} from {body['n']} observations",
        f"Window: {body['window_start']} to {body['window_end']}",
        f"Traces: {body['explorer_url']}",
    ]
    return f"[Spyglass] {headline(body)}"[:200], "\n".join(lines)


def channel_send(channel: AlertChannel, body: dict, secret: str | None) -> None:
    """One attempt to deliver `body` on `channel`; raises DeliveryFailed."""
    target = channel.target
    if target is None:
        raise DeliveryFailed("the channel's target cannot be decrypted (SPYGLASS_SECRETS_KEY or SECRET_KEY "
                             "changed?); remove and add the channel again", transient=False)
    if channel.kind == ChannelKind.EMAIL:
        subject, text = email_message(body)
        try:
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [target])
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"email: {exc.__class__.__name__}: {exc}", transient=True) from None
        return
    if channel.kind == ChannelKind.SLACK:
        raw = json.dumps(slack_payload(body)).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    else:
        if not secret:
            raise DeliveryFailed("the rule's signing secret cannot be decrypted (SPYGLASS_SECRETS_KEY or SECRET_KEY "
                                 "changed?); rotate it on the rule's page", transient=False)
        raw, headers = webhook_request(body, secret)
    if problem := url_problem(target):
        raise DeliveryFailed(f"refused: {problem}", transient=False)
    url, extra_headers, extensions = _pinned(target)
    timeout = httpx.Timeout(settings.SPYGLASS_ALERTS_HTTP_TIMEOUT_SECONDS,
                            connect=min(settings.SPYGLASS_ALERTS_HTTP_TIMEOUT_SECONDS, 5))
    try:
        # No redirects: a receiver could otherwise bounce the signed body elsewhere (or
        # to an internal address the check above would have refused).
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            request = client.build_request("POST", url, content=raw, headers={**headers, **extra_headers},
                                           extensions=extensions)
            response = client.send(request)
    except httpx.HTTPError as exc:
        # The class name only: an exception's text may quote the URL, whose path is a secret.
        raise DeliveryFailed(f"{exc.__class__.__name__} from {channel.target_hint}", transient=True) from None
    if response.status_code >= 300:
        transient = response.status_code in (408, 425, 429) or response.status_code >= 500
        raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}", transient=transient)
