"""OpenAI's error shape from every upstream's.

Contract: `error_body(status, body, content_type)` turns the body of a non-2xx
reply into `{"error": {"message", "type", "param", "code"}}` and names the
upstream behaviour it repaired (None when the body already was OpenAI's shape;
it then comes back as it was). `error_object(obj)` does the same for a JSON
value (met inside a stream, or sent with status 200) and gives None when that
value is not an error; `stream_error_line(payload)` reads the JSON llama.cpp
writes after `error:`; `error_status(error)` is the HTTP status an error sent
with 200, or inside a stream, should have had. Pure and total: any bytes in, an OpenAI error out,
nothing raised, in time linear in the body.

`error_reply(status, body, content_type)` is what an exchange sends: the
same error, with the status a client should act on where the upstream's
misleads (NIM: a 401 for a request it failed to validate, a worker cap that
is a rate limit, a removed model, a degraded function), and every repair made.

`message` is always a non-empty string (openai-python and the AI SDK read
it), `param` and `code` are always present. A `type` the upstream gives is
kept; otherwise it is derived from the status the way OpenAI's own errors
read: `invalid_request_error` for 4xx (OpenAI uses it for 401 and 404 too),
`requests` for 429 (its request rate-limit type), `server_error` otherwise.
"""

from __future__ import annotations

import html
import re
from http import HTTPStatus
from typing import Any

from ..repairs import Repair
from ..wire.body import parse_json_body, strip_body
from ..wire.jsonio import dump

# Gateway pages can be long; the message is for a human to read, not an archive.
MAX_MESSAGE = 1000
# Bytes of an HTML or text error body read for its visible text.
MAX_SCANNED = 256 * 1024
OPENAI_KEYS = ("message", "type", "param", "code")
# Elements whose content a person does not read.
_HIDDEN = re.compile(r"<(head|script|style)\b", re.I)
_CLOSE = {name: re.compile(f"</{name}", re.I) for name in ("head", "script", "style")}


def error_body(status: int, body: bytes, content_type: str = "") -> tuple[dict[str, Any], Repair | None]:
    """OpenAI's error for a non-2xx reply, and the repair made (None for none)."""
    if not body.strip():
        return openai_error(reason(status), status), Repair.error_body_empty
    obj = parse_json_body(body)
    if obj is None:
        return openai_error(visible_text(strip_body(body), content_type) or reason(status), status), Repair.error_not_json
    found = error_object(obj, status, content_type)
    if found is None:
        return error_unknown_shape(obj, body, status), Repair.error_unknown_shape
    error, repair = found
    if not repair and body.lstrip().startswith(b"data:"):
        repair = Repair.error_data_prefix
    return error, repair


def error_reply(status: int, body: bytes, content_type: str = "") -> tuple[int, dict[str, Any], list[Repair]]:
    """The status and OpenAI error to send for a non-2xx reply, and the repairs made (none: as sent)."""
    error, repair = error_body(status, body, content_type)
    repairs = [repair] if repair else []
    fixed, kind = client_status(status, error, problem=repair is Repair.nim_problem_json)
    if kind is None:
        return status, error, repairs
    inner = dict(error["error"])
    if inner.get("type") == error_type(status):  # derived from the old status: derive it again
        inner["type"] = error_type(fixed)
    if fixed == 404 and kind is Repair.model_gone_as_problem:
        inner["code"] = "model_not_found"
    return fixed, {**error, "error": inner}, [*repairs, kind]


def client_status(status: int, error: dict[str, Any], *, problem: bool) -> tuple[int, Repair | None]:
    """The status a client should act on, and the repair, when the upstream's says something else."""
    message = error["error"].get("message", "")
    if status == 401 and ("Failed to validate model spec" in message or "Unknown parameter" in message):
        return 400, Repair.validation_error_as_401  # NIM: not an auth failure (charmbracelet/crush #2472)
    if "ResourceExhausted" in message and status != 429:
        return 429, Repair.resource_exhausted_not_429  # NIM's per-model worker cap (anomalyco/opencode #34613)
    if problem and status in (404, 410):
        return 404, Repair.model_gone_as_problem  # NIM's removed model (free-claude-code #1021, oh-my-pi #2299)
    if "DEGRADED function cannot be invoked" in message and status != 503:
        return 503, Repair.function_degraded_as_400  # NIM (farion1231/cc-switch #3536): the server's state
    return status, None


def stream_error_line(payload: bytes) -> dict[str, Any]:
    """OpenAI's error from what llama.cpp writes after `error:` (its JSON, or text)."""
    obj = parse_json_body(payload)
    found = error_object(obj)
    if found is not None:
        return found[0]
    if isinstance(obj, dict):
        return wrapped(obj, None)
    return openai_error(visible_text(payload) or "error", None)


def error_object(obj: object, status: int | None = None, content_type: str = "") -> tuple[dict[str, Any], Repair | None] | None:
    """OpenAI's error and the repair's name, for any error shape we know; None for anything else."""
    if isinstance(obj, list):
        if len(obj) == 1 and isinstance(obj[0], dict) and (found := error_object(obj[0], status, content_type)) is not None:
            return found[0], Repair.error_in_array  # Gemini compat
        return None
    if not isinstance(obj, dict):
        return None
    error = obj.get("error")
    if isinstance(error, dict):
        return error_fields_missing(obj, error, status)
    if isinstance(error, str) and error:
        return error_is_string(obj, status), Repair.error_is_string
    if "choices" in obj:
        return None
    if obj.get("object") == "error" or (isinstance(obj.get("message"), str) and ("type" in obj or "code" in obj)):
        return wrapped({k: v for k, v in obj.items() if k != "object"}, status), Repair.error_not_wrapped
    if "problem+json" in content_type.lower() or ("title" in obj and ("status" in obj or "type" in obj)):
        return nim_problem_json(obj, status), Repair.nim_problem_json
    if "detail" in obj:
        return error_is_detail(obj["detail"], status), Repair.error_is_detail
    return None


# -- one function per upstream shape -------------------------------------------


def error_fields_missing(obj: dict[str, Any], error: dict[str, Any], status: int | None) -> tuple[dict[str, Any], Repair | None]:
    """`{"error": {...}}`: OpenAI's own, or TGI's newer one with only message and http_status_code."""
    fixed = wrapped(error, status)
    if fixed["error"] == error:
        return obj, None
    return {**obj, **fixed}, Repair.error_fields_missing


def error_is_string(obj: dict[str, Any], status: int | None) -> dict[str, Any]:
    """TGI before PR #2668: `{"error": "<message>", "error_type": "<type>"}`."""
    kind = obj.get("error_type")
    return openai_error(obj["error"], status, kind if isinstance(kind, str) and kind else None)


def nim_problem_json(obj: dict[str, Any], status: int | None) -> dict[str, Any]:
    """NIM's RFC 7807 problem details: OpenAI's `error` added beside the problem's own members
    (`type`, `title`, `status`, `detail`, ...), which stay as sent: NVIDIA's own client
    (langchain-nvidia-ai-endpoints) builds its message from them, OpenAI's SDKs read `error`.
    The problem's `type` is a URN, not an error type, so `error.type` is derived."""
    message = detail_text(obj.get("detail")) or detail_text(obj.get("title"))
    problem_status = obj.get("status")
    if status is None and isinstance(problem_status, int):
        status = problem_status
    return {**obj, **openai_error(message or reason(status), status)}


def error_is_detail(detail: Any, status: int | None) -> dict[str, Any]:
    """FastAPI (and NIM behind it): `{"detail": "..."}`, `{"detail": [{"loc", "msg"}, ...]}` or `{"detail": {...}}`."""
    if isinstance(detail, dict):
        return wrapped(detail, status)
    return openai_error(detail_text(detail) or reason(status), status)


def error_unknown_shape(obj: object, body: bytes, status: int) -> dict[str, Any]:
    if isinstance(obj, dict) and isinstance(obj.get("message"), str) and obj["message"]:
        return openai_error(obj["message"], status)  # e.g. Kong: {"message": "no Route matched ..."}
    if isinstance(obj, str) and obj:
        return openai_error(obj, status)
    return openai_error(visible_text(strip_body(body)) or reason(status), status)


# -- building blocks -----------------------------------------------------------


def wrapped(error: dict[str, Any], status: int | None) -> dict[str, Any]:
    """`{"error": error}` with message, type, param and code present and well typed, other keys kept."""
    if status is None:
        status = next((v for v in (error.get("http_status_code"), error.get("code")) if http_error_status(v)), None)
    message = error.get("message")
    if not (isinstance(message, str) and message):
        message = reason(status) if message is None or message == "" else dumps(message)
    kind = error.get("type")
    code = error.get("code")
    if not valid_code(code):
        code = None
    out = openai_error(message, status, kind if isinstance(kind, str) and kind else None, error.get("param"), code)
    out["error"].update((k, v) for k, v in error.items() if k not in OPENAI_KEYS)
    return out


def openai_error(message: str, status: int | None, kind: str | None = None, param: Any = None, code: Any = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind or error_type(status), "param": param, "code": code}}


def error_type(status: int | None) -> str:
    if status == 429:
        return "requests"
    if status is not None and 400 <= status < 500:
        return "invalid_request_error"
    return "server_error"


def reason(status: int | None) -> str:
    """The HTTP reason phrase: the message of a reply that says nothing else."""
    if status is None:
        return "error"
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP status {status}"


def valid_code(code: Any) -> bool:
    return code is None or isinstance(code, str) or (isinstance(code, int) and not isinstance(code, bool))


def http_error_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599


def detail_text(detail: Any) -> str:
    """A problem's or FastAPI's detail as one line of text."""
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list):
        return "; ".join(filter(None, (validation_text(item) for item in detail)))
    return "" if detail is None else dumps(detail)


def validation_text(item: Any) -> str:
    """One pydantic validation error, `{"loc": ["body", "x"], "msg": "..."}`, as `body -> x: ...`."""
    if not isinstance(item, dict):
        return item.strip() if isinstance(item, str) else dumps(item)
    loc = item.get("loc")
    msg = detail_text(item.get("msg"))
    where = " -> ".join(map(str, loc)) if isinstance(loc, list) else ""
    return f"{where}: {msg}" if where and msg else msg or where


def visible_text(body: bytes, content_type: str = "") -> str:
    """What a person would read in a gateway's reply: HTML without its markup, or the text itself."""
    text = body[:MAX_SCANNED].strip().decode("utf-8", "replace")
    if "html" in content_type.lower() or text.startswith("<"):
        text = " ".join(html.unescape(without_markup(text)).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def without_markup(text: str) -> str:
    """HTML's text: tags, comments and the content of head, script and style removed.
    One pass with str.find, so an unclosed `<!--` or `<script` costs linear time
    (it hides the rest of the page, as it would in a browser)."""
    out: list[str] = []
    at, end = 0, len(text)
    while at < end:
        lt = text.find("<", at)
        if lt < 0:
            out.append(text[at:])
            break
        out.append(text[at:lt])
        out.append(" ")
        if text.startswith("<!--", lt):
            close = text.find("-->", lt + 4)
            at = end if close < 0 else close + 3
            continue
        hidden = _HIDDEN.match(text, lt)
        if hidden:
            closing = _CLOSE[hidden.group(1).lower()].search(text, hidden.end())
            lt = end if closing is None else closing.start()
        gt = text.find(">", lt)
        at = end if gt < 0 else gt + 1
    return "".join(out)


def dumps(obj: Any) -> str:
    return dump(obj).decode("utf-8")


# Error types (OpenAI's, and those of servers that copy its shape) that say what status they are.
STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "requests": 429,
    "tokens": 429,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "overloaded_error": 503,
}


def error_status(error: dict[str, Any]) -> int:
    """The status of an OpenAI error that came without one (sent with status 200, or inside
    a stream): its own code when that is an HTTP error status, else what its type says,
    else 502 (the upstream failed). Every bridge derives its client's error type from it."""
    inner = error.get("error")
    inner = inner if isinstance(inner, dict) else {}
    code = inner.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and http_error_status(code):
        return code
    kind = inner.get("type")
    return STATUS_OF_TYPE.get(kind, 502) if isinstance(kind, str) else 502
