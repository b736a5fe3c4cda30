"""HTTP client for the MoySklad JSON API 1.2 (reference: /work/shared/reference/moysklad.md §1, §5).

Sends what the API insists on (Bearer token, ``Accept-Encoding: gzip``), paces itself by the
``X-RateLimit-Remaining``/``X-Lognex-Reset`` headers, and retries what is worth retrying:
429 after ``X-Lognex-Retry-After`` ms (else ``Retry-After`` s, else backoff), 5xx, timeouts
and dropped connections with exponential backoff. Other 4xx are never retried — the API
locks out accounts that repeat failing requests. Every error names the URL it came from.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import urllib3
from django.utils.translation import gettext as _
from urllib3.exceptions import HTTPError as Urllib3Error

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.moysklad.ru/api/remap/1.2"
API_ROOT = "/api/remap/1.2"
_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


class MoySkladError(Exception):
    """A MoySklad request that failed; ``url`` says which, ``status``/``code`` what the API answered."""

    def __init__(self, message: str, *, url: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.code = code


class MoySkladAuthError(MoySkladError):
    """The token was refused (401) or lacks rights (403)."""


class MoySkladRequestError(MoySkladError):
    """The API rejected the request itself (4xx other than 401/403/429): retrying would not help."""


class MoySkladUnavailableError(MoySkladError):
    """No usable answer after every retry: network errors, timeouts, 5xx or 429 that did not clear."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: ``attempts`` in total per request, backoff doubling from ``backoff`` up to ``max_backoff``."""

    attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    connect_timeout: float = 10.0
    # The API may take minutes on a heavy page (doc §5): a short read timeout would retry work in progress.
    read_timeout: float = 300.0


class MoySkladClient:
    """GET requests against one account; ``get`` takes a path under the API root or an href the API gave."""

    def __init__(self, *, base_url: str, token: str, retry: RetryPolicy | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.retry = retry or RetryPolicy()
        self._pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=self.retry.connect_timeout, read=self.retry.read_timeout),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept-Encoding": "gzip",  # mandatory: the API answers 415 without it
                "Accept": "application/json;charset=utf-8",
                "User-Agent": "cxplatform-moysklad-importer/1.0",
            },
        )
        self._not_before = 0.0  # monotonic time before which the rate-limit bucket is empty
        self.requests_sent = 0

    def url_for(self, path_or_href: str, params: Mapping[str, Any] | None = None) -> str:
        """The URL to request. Hrefs are re-rooted on ``base_url``, so the token only ever goes to that host."""
        path = path_or_href
        if "://" in path_or_href:
            split = urlsplit(path_or_href)
            path = split.path.split(API_ROOT, 1)[-1] + (f"?{split.query}" if split.query else "")
        url = f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, quote_via=quote, safe=",")
        return url

    def get(self, path_or_href: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET and decode JSON (floats as Decimal, so kopecks and quantities stay exact)."""
        url = self.url_for(path_or_href, params)
        last_problem = ""
        for attempt in range(1, self.retry.attempts + 1):
            self._wait_for_bucket()
            self.requests_sent += 1
            try:
                response = self._pool.request("GET", url, preload_content=True)
            except Urllib3Error as exc:  # timeouts, refused or dropped connections, truncated bodies
                last_problem = f"{type(exc).__name__}: {exc}"
                self._sleep_before_retry(attempt, url, last_problem, None)
                continue
            self._note_rate_headers(response.headers)
            if response.status == 200:
                return self._decode(response, url)
            error = _error_summary(response)
            if response.status == 429:
                last_problem = f"HTTP 429 {error}"
                self._sleep_before_retry(attempt, url, last_problem, _retry_after_seconds(response.headers))
                continue
            if response.status in _RETRYABLE_STATUSES:
                last_problem = f"HTTP {response.status} {error}"
                self._sleep_before_retry(attempt, url, last_problem, None)
                continue
            code = _error_code(response)
            if response.status in (401, 403):
                raise MoySkladAuthError(
                    (
                        _("MoySklad refused the token for GET %(url)s: HTTP %(status)d %(error)s")
                        % {"url": url, "status": response.status, "error": error}
                    ).rstrip(),
                    url=url,
                    status=response.status,
                    code=code,
                )
            raise MoySkladRequestError(
                (
                    _("MoySklad rejected GET %(url)s: HTTP %(status)d %(error)s")
                    % {"url": url, "status": response.status, "error": error}
                ).rstrip(),
                url=url,
                status=response.status,
                code=code,
            )
        raise MoySkladUnavailableError(
            _("MoySklad at %(url)s did not answer after %(attempts)d attempts: %(problem)s")
            % {"url": url, "attempts": self.retry.attempts, "problem": last_problem},
            url=url,
        )

    def _decode(self, response: urllib3.BaseHTTPResponse, url: str) -> dict[str, Any]:
        try:
            return json.loads(response.data, parse_float=Decimal)
        except ValueError as exc:
            raise MoySkladUnavailableError(
                _("MoySklad sent invalid JSON for GET %(url)s: %(error)s") % {"url": url, "error": exc}, url=url
            ) from exc

    def _wait_for_bucket(self) -> None:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _note_rate_headers(self, headers: Mapping[str, str]) -> None:
        # Pace ourselves before the API has to say 429: when the bucket is empty, wait for its reset.
        remaining = _int_header(headers, "X-RateLimit-Remaining")
        reset_ms = _int_header(headers, "X-Lognex-Reset")
        if remaining is not None and remaining <= 0 and reset_ms:
            self._not_before = max(self._not_before, time.monotonic() + reset_ms / 1000)

    def _sleep_before_retry(self, attempt: int, url: str, problem: str, server_delay: float | None) -> None:
        if attempt >= self.retry.attempts:
            return
        if server_delay is not None:
            delay = server_delay
        else:
            ceiling = min(self.retry.max_backoff, self.retry.backoff * 2 ** (attempt - 1))
            delay = random.uniform(ceiling / 2, ceiling)  # jitter: parallel importers don't retry in lockstep
        logger.info("MoySklad GET %s failed (%s); retry %d in %.2f s", url, problem, attempt, delay)
        time.sleep(delay)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """How long a 429 asks us to wait: ``X-Lognex-Retry-After`` (ms), else ``Retry-After`` (s), else unknown."""
    lognex_ms = _int_header(headers, "X-Lognex-Retry-After")
    if lognex_ms:
        return lognex_ms / 1000
    seconds = _int_header(headers, "Retry-After")
    return float(seconds) if seconds else None


def _error_payload(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    try:
        errors = json.loads(response.data).get("errors") or [{}]
        return errors[0] if isinstance(errors[0], dict) else {}
    except (ValueError, AttributeError):
        return {}


def _error_code(response: urllib3.BaseHTTPResponse) -> int | None:
    code = _error_payload(response).get("code")
    return code if isinstance(code, int) else None


def _error_summary(response: urllib3.BaseHTTPResponse) -> str:
    """``[1056] message`` from the API's error body, or nothing when the body is empty (415) or not JSON."""
    payload = _error_payload(response)
    message = payload.get("error_message") or payload.get("error") or ""
    code = payload.get("code")
    return f"[{code}] {message}".strip() if code is not None else str(message)
