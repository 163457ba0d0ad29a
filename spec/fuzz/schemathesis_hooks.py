"""Schemathesis hooks for Hearth's schema fuzz test (spec/fuzz/schemathesis.spec.ts).

Loaded through SCHEMATHESIS_HOOKS=<path of this file>.

- Check `matrix_error_body`: every response with status >= 400 has a JSON object body with a
  string `errcode` and a string `error` (the Client-Server API's standard error response). One
  exception, because the spec defines it so: a 401 whose body is a user-interactive-auth
  challenge (`flows` array, plus `session`/`params`), which the spec sends without `errcode`
  on the first request of a UIA flow. Those are counted in the stats as `uia_challenges`.
- Auth (only when HEARTH_FUZZ_PASSWORD is set): a provider puts `Authorization: Bearer <token>`
  on every case. It starts from HEARTH_FUZZ_TOKEN; when a response says M_UNKNOWN_TOKEN for the
  token it sent (the fuzzer itself calls /logout, /logout/all, /delete_devices...), it logs in
  again with HEARTH_FUZZ_USER_ID/HEARTH_FUZZ_PASSWORD at HEARTH_FUZZ_URL, so the rest of the
  authenticated run is not all 401s.
- `map_case`: in positive mode, every other case for an operation with room/user/device path
  parameters gets the real IDs the test created (env HEARTH_FUZZ_ROOM_ID, HEARTH_FUZZ_USER_ID,
  HEARTH_FUZZ_DEVICE_ID, HEARTH_FUZZ_EVENT_ID), so room-scoped paths also reach real rooms instead of only 404s.
  Negative-mode cases are left alone: their path parameters stay mutated.
- Failures (env HEARTH_FUZZ_FAILURES, a JSON-lines file): each response that is a 5xx or an error
  without the Matrix error shape, with the request as actually sent and a curl reproduction (the
  access token replaced by $TOKEN), so the mocha spec can list them without parsing schemathesis
  output. Schemathesis' own report is checked as well.
- Statistics (env HEARTH_FUZZ_STATS, a file): per-run counts of statuses per operation, and how
  many 2xx responses do not match the documented response schema (recorded only, never a failure:
  strict conformance of success bodies is a conformance task, not hardening).
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shlex
import threading
from collections import Counter, defaultdict

import schemathesis

_REAL = {
    "roomId": os.environ.get("HEARTH_FUZZ_ROOM_ID"),
    "userId": os.environ.get("HEARTH_FUZZ_USER_ID"),
    "deviceId": os.environ.get("HEARTH_FUZZ_DEVICE_ID"),
    "eventId": os.environ.get("HEARTH_FUZZ_EVENT_ID"),
}
_REAL = {k: v for k, v in _REAL.items() if v}

_lock = threading.Lock()
_alternate = itertools.count()
_statuses: dict[str, Counter] = defaultdict(Counter)
_schema_mismatch: Counter = Counter()
_schema_checked = Counter()
_error_shape_failures: Counter = Counter()
_uia_challenges = Counter()
_relogins = [0]


def _label(case) -> str:
    return f"{case.method.upper()} {case.path}"


@schemathesis.hook
def map_case(context, case):
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    if not _REAL or mode is None or str(getattr(mode, "value", mode)) != "positive":
        return case
    if not isinstance(case.path_parameters, dict) or not any(k in case.path_parameters for k in _REAL):
        return case
    if next(_alternate) % 2 == 0:
        for key, value in _REAL.items():
            if key in case.path_parameters:
                case.path_parameters[key] = value
    return case


def _body_json(response):
    try:
        return json.loads(response.content.decode("utf-8")) if response.content else None
    except (UnicodeDecodeError, ValueError):
        return None


def _curl(request):
    parts = ["curl", "-sS", "-X", request.method]
    for name, value in request.headers.items():
        if name.lower() in ("user-agent", "accept-encoding", "accept", "connection", "content-length", "x-schemathesis-testcaseid"):
            continue
        if name.lower() == "authorization" and str(value).startswith("Bearer "):
            parts += ["-H", "Authorization: Bearer $TOKEN"]
            continue
        parts += ["-H", f"{name}: {value}"]
    body = request.body
    truncated = False
    if body is not None:
        if isinstance(body, bytes):
            body = body.decode("utf-8", "backslashreplace")
        if len(body) > 4000:
            body, truncated = body[:4000], True
        parts += ["--data-binary", body]
    parts.append(request.url)
    cmd = " ".join(shlex.quote(p) if p != "Authorization: Bearer $TOKEN" else '"Authorization: Bearer $TOKEN"' for p in parts)
    return cmd + ("  # body truncated at 4000 chars" if truncated else "")


def _record_failure(case, response, kind):
    path = os.environ.get("HEARTH_FUZZ_FAILURES")
    if not path:
        return
    body = response.content[:1000].decode("utf-8", "replace") if response.content else ""
    meta = getattr(case, "meta", None)
    entry = {
        "kind": kind,
        "operation": _label(case),
        "declared_method": str(getattr(case.operation, "method", "")).upper(),
        "scenario": str(getattr(getattr(getattr(getattr(meta, "phase", None), "data", None), "scenario", None), "value", "")),
        "status": response.status_code,
        "body": body,
        "mode": str(getattr(getattr(getattr(meta, "generation", None), "mode", None), "value", "")),
        "phase": str(getattr(getattr(getattr(meta, "phase", None), "name", None), "value", "")),
        "authenticated": "authorization" in {k.lower() for k in response.request.headers},
        "curl": _curl(response.request),
    }
    with _lock:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


@schemathesis.check
def matrix_error_body(ctx, response, case):
    """Status >= 400 must carry {"errcode": string, "error": string}."""
    status = response.status_code
    with _lock:
        _statuses[_label(case)][status] += 1
    if status >= 500:
        _record_failure(case, response, "server_error")
    if 200 <= status < 300:
        _record_schema_conformance(response, case)
    if status < 400:
        return None
    body = _body_json(response)
    ok = isinstance(body, dict) and isinstance(body.get("errcode"), str) and isinstance(body.get("error"), str)
    if status == 401 and isinstance(body, dict):
        if body.get("errcode") == "M_UNKNOWN_TOKEN":
            _TokenProvider.mark_stale(_sent_token(case))
        if not ok and isinstance(body.get("flows"), list) and "errcode" not in body:
            with _lock:
                _uia_challenges[_label(case)] += 1
            return None
    if not ok:
        with _lock:
            _error_shape_failures[(_label(case), status)] += 1
        _record_failure(case, response, "error_body_shape")
        text = response.content[:300].decode("utf-8", "replace") if response.content else "<empty>"
        raise AssertionError(
            f"Error response {status} is not a Matrix error body {{errcode: string, error: string}}: {text}"
        )
    return None


def _record_schema_conformance(response, case):
    try:
        case.operation.validate_response(response, case=case)
        mismatch = False
    except Exception:  # noqa: BLE001 - any validation failure counts as a mismatch
        mismatch = True
    with _lock:
        _schema_checked[_label(case)] += 1
        if mismatch:
            _schema_mismatch[_label(case)] += 1


def _sent_token(case):
    value = case.headers.get("Authorization") if case.headers else None
    if isinstance(value, str) and value.startswith("Bearer "):
        return value[len("Bearer ") :]
    return None


class _TokenProvider:
    """Bearer token for the fuzz user; re-logs in once the token it handed out stops working."""

    token = os.environ.get("HEARTH_FUZZ_TOKEN")
    stale = False

    @classmethod
    def mark_stale(cls, token):
        if token is not None and token == cls.token:
            cls.stale = True

    def get(self, case, ctx):
        cls = _TokenProvider
        with _lock:
            if cls.stale or not cls.token:
                cls.token = _login()
                cls.stale = False
                _relogins[0] += 1
            return cls.token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


def _login():
    import requests

    url = os.environ["HEARTH_FUZZ_URL"].rstrip("/") + "/_matrix/client/v3/login"
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": os.environ["HEARTH_FUZZ_USER_ID"]},
        "password": os.environ["HEARTH_FUZZ_PASSWORD"],
    }
    res = requests.post(url, json=body, timeout=30)
    res.raise_for_status()
    return res.json()["access_token"]


if os.environ.get("HEARTH_FUZZ_PASSWORD"):
    schemathesis.auth(refresh_interval=None)(_TokenProvider)


def _dump_stats():
    path = os.environ.get("HEARTH_FUZZ_STATS")
    if not path:
        return
    with _lock:
        data = {
            "statuses": {op: dict(c) for op, c in _statuses.items()},
            "success_checked": dict(_schema_checked),
            "success_schema_mismatch": dict(_schema_mismatch),
            "error_shape_failures": [[op, st, n] for (op, st), n in _error_shape_failures.items()],
            "uia_challenges": dict(_uia_challenges),
            "relogins": _relogins[0],
        }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


atexit.register(_dump_stats)
