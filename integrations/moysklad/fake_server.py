"""A fake MoySklad JSON API 1.2 server: real HTTP on loopback, for tests and the demo.

It speaks the parts of the API the importer uses (``/entity/{type}``, ``/entity/{type}/{id}``,
``/entity/{doc}/{id}/positions``, ``/entity/product/metadata/attributes``,
``/context/employee``) with the real API's traps: Bearer auth (401), gzip mandatory (415
with an empty body), offset paging with ``meta.size``/``nextHref``, filters on
``updated``/``moment``, ``expand`` silently ignored above ``limit=100``, a 45-per-3-s
token bucket with the ``X-RateLimit-*``/``X-Lognex-*`` headers, and 429 (code 1073)
beyond 5 parallel requests. Tests inject faults: 429s, 5xx, slow responses, and a
server that dies in the middle of a page.

    python -m integrations.moysklad.fake_server --port 8765 --seed 1 --token demo-token
"""

from __future__ import annotations

import argparse
import gzip
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from integrations.moysklad.fake_account import (
    DOCUMENT_TYPES,
    ENTITY_TYPES,
    POSITION_TYPES,
    ApiError,
    FakeAccount,
    parse_expand,
)

API_PREFIX = "/api/remap/1.2"
MAX_EXPAND_LIMIT = 100  # above this the real API ignores ``expand`` without a word
MAX_PARALLEL = 5
AUTH_ERROR = "Ошибка аутентификации: Неправильный пароль или имя пользователя или ключ авторизации"
RATE_ERROR = "Превышено ограничение на количество запросов в единицу времени"


@dataclass
class RequestRecord:
    """One request as the fake saw it, for assertions on the importer's behaviour."""

    path: str
    params: dict[str, str]
    status: int
    at: float  # time.monotonic() when the request arrived
    accept_encoding: str


@dataclass
class Faults:
    """Switches a test flips to make the fake misbehave; counters count down as requests arrive."""

    throttle_after: int = 0  # requests to let through before throttle_next starts
    throttle_next: int = 0
    throttle_every: int = 0  # every k-th request answers 429
    retry_after_ms: int = 50
    fail_after: int = 0
    fail_next: int = 0
    fail_status: int = 503
    slow_next: int = 0
    slow_seconds: float = 0.0
    crash_after_pages: int | None = None  # serve this many list pages of ``crash_entity``, then die mid-page
    crash_entity: str = "retaildemand"
    pages_served: int = 0
    down: bool = False


@dataclass
class _Bucket:
    """The API's token bucket: ``capacity`` requests per ``window_ms``, refilled continuously."""

    capacity: int
    window_ms: int
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.capacity)

    def take(self) -> tuple[bool, dict[str, str]]:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.capacity * 1000 / self.window_ms)
        self.stamp = now
        allowed = self.tokens >= 1
        if allowed:
            self.tokens -= 1
        ms_per_token = self.window_ms / self.capacity
        wait_ms = 0 if allowed else int((1 - self.tokens) * ms_per_token) + 1
        reset_ms = int((self.capacity - self.tokens) * ms_per_token) if self.tokens < 1 else 0
        return allowed, {
            "X-RateLimit-Limit": str(self.capacity),
            "X-RateLimit-Remaining": str(int(self.tokens)),
            "X-Lognex-Retry-TimeInterval": str(self.window_ms),
            "X-Lognex-Reset": str(reset_ms),
            "X-Lognex-Retry-After": str(wait_ms),
        }


class FakeMoySklad:
    """A fake MoySklad account behind a real HTTP server; use ``with fake.serve() as base_url:``."""

    def __init__(
        self,
        account: FakeAccount | None = None,
        *,
        seed: int = 1,
        token: str = "fake-moysklad-token",
        rate_limit: tuple[int, int] = (45, 3000),
    ) -> None:
        self.account = account or FakeAccount.generate(seed)
        self.token = token
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.max_parallel_seen = 0
        self._bucket = _Bucket(*rate_limit)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._request_count = 0

    # --- fault switches ---------------------------------------------------------------------------

    def throttle(self, *, next: int = 0, after: int = 0, every: int = 0, retry_after_ms: int = 50) -> None:
        """Answer 429 (code 1049, with the retry headers) to N requests after the next ``after``, or to every Kth."""
        with self._lock:
            self.faults.throttle_next, self.faults.throttle_after, self.faults.throttle_every = next, after, every
            self.faults.retry_after_ms = retry_after_ms

    def fail(self, *, next: int, after: int = 0, status: int = 503) -> None:
        """Answer ``status`` to N requests after the next ``after``."""
        with self._lock:
            self.faults.fail_next, self.faults.fail_after, self.faults.fail_status = next, after, status

    def slow(self, *, next: int, seconds: float) -> None:
        with self._lock:
            self.faults.slow_next, self.faults.slow_seconds = next, seconds

    def crash_after_pages(self, pages: int, *, entity: str = "retaildemand") -> None:
        """After ``pages`` list pages of ``entity``, cut the next one off mid-body and drop every later connection."""
        with self._lock:
            self.faults.crash_after_pages, self.faults.crash_entity, self.faults.pages_served = pages, entity, 0

    def recover(self) -> None:
        """Bring a crashed fake back up and clear every fault."""
        with self._lock:
            self.faults = Faults()

    @property
    def requests_received(self) -> int:
        """Every request that arrived, including ones still being answered or dropped."""
        with self._lock:
            return self._request_count

    def requests_to(self, path_suffix: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    # --- server -----------------------------------------------------------------------------------

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Run the server on a thread; yields its base URL (``http://127.0.0.1:<port>/api/remap/1.2``)."""
        server = _Server((host, port), _Handler)
        server.fake = self
        thread = threading.Thread(target=server.serve_forever, name="fake-moysklad", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{server.server_address[1]}{API_PREFIX}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    # --- request handling (called by the handler thread) -------------------------------------------

    def _admit(self) -> bool:
        """Count the request and apply latency; False when the server is down and must drop the connection."""
        with self._lock:
            self._request_count += 1
            faults = self.faults
            if faults.down:
                return False
            delay = faults.slow_seconds if faults.slow_next else 0.0
            faults.slow_next = max(0, faults.slow_next - 1)
        if delay:
            time.sleep(delay)
        return True

    def _rate_check(self) -> tuple[tuple[int, dict | None] | None, dict[str, str]]:
        """Injected 5xx/429 first, then the real token bucket; returns (error or None, rate headers)."""
        with self._lock:
            faults = self.faults
            if faults.fail_next and _due(faults, "fail_after"):
                faults.fail_next -= 1
                return (faults.fail_status, {"errors": [{"error": "Внутренняя ошибка сервера", "code": 1000}]}), {}
            every = faults.throttle_every and self._request_count % faults.throttle_every == 0
            if every or (faults.throttle_next and _due(faults, "throttle_after")):
                faults.throttle_next = max(0, faults.throttle_next - (not every))
                headers = {
                    "X-RateLimit-Limit": str(self._bucket.capacity),
                    "X-RateLimit-Remaining": "0",
                    "X-Lognex-Retry-TimeInterval": str(self._bucket.window_ms),
                    "X-Lognex-Reset": str(faults.retry_after_ms),
                    "X-Lognex-Retry-After": str(faults.retry_after_ms),
                }
                return (429, _rate_error_body(1049)), headers
            allowed, headers = self._bucket.take()
            return (None if allowed else (429, _rate_error_body(1049))), headers

    def _crash_now(self, kind: str) -> bool:
        """Whether this list page of ``kind`` is the one the server dies in the middle of."""
        with self._lock:
            faults = self.faults
            if faults.crash_after_pages is None or kind != faults.crash_entity:
                return False
            if faults.pages_served < faults.crash_after_pages:
                faults.pages_served += 1
                return False
            faults.down = True
            return True

    def route(self, path: str, params: dict[str, str], base: str) -> dict[str, Any]:
        """Answer a GET under the API prefix; raises ApiError for what the real API would refuse."""
        parts = [p for p in path.split("/") if p]
        account = self.account
        with account.lock:
            if parts == ["context", "employee"]:
                return account.render("employee", account.employees[0], base, {})
            if parts == ["entity", "product", "metadata", "attributes"]:
                rows = [account.render_attribute(attribute, base) for attribute in account.attributes]
                meta = {"href": f"{base}{path}", "type": "attributemetadata", "mediaType": "application/json"}
                return {"meta": meta | {"size": len(rows), "limit": 1000, "offset": 0}, "rows": rows}
            if len(parts) >= 2 and parts[0] == "entity" and parts[1] in ENTITY_TYPES:
                kind = parts[1]
                if len(parts) == 2:
                    return self._list(kind, params, base)
                if len(parts) == 3:
                    return account.render(
                        kind, account.get_row(kind, parts[2]), base, parse_expand(params.get("expand", ""))
                    )
                if len(parts) == 4 and parts[3] == "positions" and kind in DOCUMENT_TYPES:
                    return self._positions(kind, parts[2], params, base)
        raise ApiError(404, 1002, f"Неизвестный путь: '{path}'")

    def _list(self, kind: str, params: dict[str, str], base: str) -> dict[str, Any]:
        limit, offset = _paging(params)
        rows = self.account.list_rows(kind, filter_text=params.get("filter", ""), order_text=params.get("order", ""))
        expand = parse_expand(params.get("expand", "")) if limit <= MAX_EXPAND_LIMIT else {}
        page = rows[offset : offset + limit]
        return {
            "context": {"employee": {"meta": {"href": f"{base}/context/employee", "type": "employee"}}},
            "meta": _list_meta(f"{base}/entity/{kind}", kind, params, len(rows), limit, offset),
            "rows": [self.account.render(kind, row, base, expand) for row in page],
        }

    def _positions(self, kind: str, document_id: str, params: dict[str, str], base: str) -> dict[str, Any]:
        self.account.get_row(kind, document_id)  # 404 for an unknown document
        limit, offset = _paging(params)
        positions = self.account.positions.get(document_id, [])
        expand = parse_expand(params.get("expand", "")) if limit <= MAX_EXPAND_LIMIT else {}
        href = f"{base}/entity/{kind}/{document_id}/positions"
        return {
            "meta": _list_meta(href, POSITION_TYPES[kind], params, len(positions), limit, offset),
            "rows": [
                self.account.render_position(kind, document_id, p, base, expand)
                for p in positions[offset : offset + limit]
            ],
        }


def _due(faults: Faults, delay_field: str) -> bool:
    """Count down a fault's delay; True once it has run out."""
    remaining = getattr(faults, delay_field)
    if remaining:
        setattr(faults, delay_field, remaining - 1)
    return not remaining


def _rate_error_body(code: int) -> dict:
    return {
        "errors": [
            {"error": RATE_ERROR, "code": code, "moreInfo": f"https://dev.moysklad.ru/doc/api/remap/1.2/#error_{code}"}
        ]
    }


def _paging(params: dict[str, str]) -> tuple[int, int]:
    try:
        limit = int(params.get("limit", "1000"))
        offset = int(params.get("offset", "0"))
    except ValueError:
        raise ApiError(400, 1084, "Неверное значение параметра limit или offset") from None
    if not 1 <= limit <= 1000 or offset < 0:
        raise ApiError(400, 1084, f"Неверное значение параметра limit или offset: {limit}, {offset}")
    return limit, offset


def _list_meta(href: str, kind: str, params: dict[str, str], size: int, limit: int, offset: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"href": href, "type": kind, "mediaType": "application/json", "size": size}
    meta |= {"limit": limit, "offset": offset}
    if offset + limit < size:
        meta["nextHref"] = f"{href}?{urlencode(params | {'offset': offset + limit, 'limit': limit})}"
    if offset > 0:
        meta["previousHref"] = f"{href}?{urlencode(params | {'offset': max(0, offset - limit), 'limit': limit})}"
    return meta


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeMoySklad

    def handle_error(self, request, client_address) -> None:
        pass  # clients that time out and hang up are part of the tests, not errors


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fake = self.server.fake
        with fake._lock:
            fake._in_flight += 1
            fake.max_parallel_seen = max(fake.max_parallel_seen, fake._in_flight)
            parallel = fake._in_flight
        try:
            self._answer(fake, parallel)
        finally:
            with fake._lock:
                fake._in_flight -= 1

    def _answer(self, fake: FakeMoySklad, parallel: int) -> None:
        split = urlsplit(self.path)
        params = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        accept_encoding = self.headers.get("Accept-Encoding", "")
        arrived = time.monotonic()
        if not fake._admit():
            self._record(fake, split.path, params, 0, arrived, accept_encoding)
            self.close_connection = True  # the server is down: hang up without an answer
            return
        status, headers, body = self._decide(fake, split.path, params, accept_encoding, parallel)
        self._record(fake, split.path, params, status, arrived, accept_encoding)
        route = split.path.removeprefix(API_PREFIX).strip("/").split("/")
        is_list_page = status == 200 and len(route) == 2 and route[0] == "entity"
        self._send(status, headers, body, truncate=is_list_page and fake._crash_now(route[1]))

    def _decide(
        self, fake: FakeMoySklad, path: str, params: dict[str, str], accept_encoding: str, parallel: int
    ) -> tuple[int, dict[str, str], dict | None]:
        if "gzip" not in accept_encoding.lower():
            return 415, {}, None  # the real API: 415 with an empty body
        if self.headers.get("Authorization", "") != f"Bearer {fake.token}":
            return 401, {"X-Lognex-Auth": "-1"}, {"errors": [{"error": AUTH_ERROR, "code": 1056}]}
        if parallel > MAX_PARALLEL:
            return 429, {}, _rate_error_body(1073)  # the parallel limit carries no rate headers
        error, rate_headers = fake._rate_check()
        if error is not None:
            return error[0], rate_headers, error[1]
        if not path.startswith(API_PREFIX + "/"):
            return 404, rate_headers, {"errors": [{"error": f"Неизвестный путь: '{path}'", "code": 1002}]}
        base = f"http://{self.headers.get('Host', 'localhost')}{API_PREFIX}"
        try:
            return 200, rate_headers, fake.route(path.removeprefix(API_PREFIX), params, base)
        except ApiError as exc:
            return exc.status, rate_headers, {"errors": [{"error": exc.message, "code": exc.code}]}

    def _record(self, fake: FakeMoySklad, path: str, params: dict, status: int, at: float, encoding: str) -> None:
        with fake._lock:
            fake.requests.append(RequestRecord(path, params, status, at, encoding))

    def _send(self, status: int, headers: dict[str, str], body: dict | None, *, truncate: bool = False) -> None:
        payload = b"" if body is None else gzip.compress(json.dumps(body, ensure_ascii=False).encode())
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake MoySklad JSON API 1.2 server (demo and manual tests).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--token", default="fake-moysklad-token")
    parser.add_argument("--demands", type=int, default=240, help="retail sales to generate")
    args = parser.parse_args(argv)
    fake = FakeMoySklad(FakeAccount.generate(args.seed, demands=args.demands), token=args.token)
    with fake.serve(args.host, args.port) as base_url:
        print(f"Fake MoySklad at {base_url} (token {args.token!r}); Ctrl+C stops it.", flush=True)
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
