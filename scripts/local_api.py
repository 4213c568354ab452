"""The HTTP API of template.yaml on one local origin, as API Gateway (HTTP API, payload v2) serves it.

`make dev` runs it next to `cargo lambda watch`:

    .venv/bin/python scripts/local_api.py [--port 3000] [--watch-port 9000] [--template template.yaml]

so the frontend and curl call `http://127.0.0.1:3000/api/v1/notifications/...` as they would call
the deployed API, and each request is handed to the function that route names in template.yaml.
Nothing about the routes is written here: they are read from the template at start, so they
cannot drift from what is deployed.

What it does, as API Gateway does (DESIGN.md §5, §10):
* Routes: every `AWS::Serverless::Function` event of `Type: HttpApi` (its `Path`, `!Sub`
  resolved from the Parameters' defaults, and `Method`, `ANY` or a verb); the function is the
  last component of its `CodeUri`, the package name `cargo lambda watch` serves. A request path
  matches after dropping one trailing slash (`/x/` is routed to the route `/x`; the function
  sees the path as sent). `{name}` and `{proxy+}` segments work; no route is 404
  `{"message":"Not Found"}`.
* CORS from the `HttpApi` resource's `CorsConfiguration`: preflights (OPTIONS with `Origin` and
  `Access-Control-Request-Method`) are answered here with 204, never by a function, with the
  CORS headers only when the origin, method and headers are allowed; other responses get
  `Access-Control-Allow-Origin` etc. when the request's origin is allowed, and any
  `Access-Control-*` header of the function is dropped (API Gateway ignores them).
* The event is payload format 2.0 (`cookies` taken out of the headers, lower-case header names,
  repeated headers joined with ",", `requestContext.http.sourceIp`, ...), sent to
  `cargo lambda watch`'s invoke endpoint, `POST /2015-03-31/functions/<function>/invocations`
  (the Lambda Invoke API path). A function error is 500 `{"message":"Internal Server Error"}`,
  the error printed on stderr.

Settings that a deployed stack takes as parameters come from the environment here:
`API_BASE_PATH` (parameter ApiBasePath) and `ALLOWED_ORIGINS` (comma list, parameter
AllowedOrigins); without them, the template's defaults.

Local-only behaviour, on purpose different from API Gateway: when the TCP peer is a loopback
address and the request carries `X-Forwarded-For`, `sourceIp` is that header's first address,
so local scripts (`make demo`, load tests) can act as many clients. API Gateway always uses the
peer address. There is no 30-second integration timeout either: the first call of a function
compiles it.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import re
import secrets
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Environment variables that stand for template parameters, as the deployed stack's parameters would.
PARAMETER_ENV = {"ApiBasePath": "API_BASE_PATH", "AllowedOrigins": "ALLOWED_ORIGINS"}

NOT_FOUND = (404, [("Content-Type", "application/json")], b'{"message":"Not Found"}')
INTERNAL_ERROR = (500, [("Content-Type", "application/json")], b'{"message":"Internal Server Error"}')

# Hop-by-hop or framing headers of a function's answer that this server sets itself.
_FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class TemplateError(Exception):
    """template.yaml does not say something this server needs, or says it in a form it cannot resolve."""


class FunctionError(Exception):
    """The function failed or answered something API Gateway would not accept: a 500."""


# --------------------------------------------------------------------------------------------
# template.yaml
# --------------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """A safe YAML loader that also reads CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...)."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)


def template_parameters(template: dict, env=None) -> dict:
    """Each parameter's value: the environment variable that stands for it, else its Default.

    CommaDelimitedList parameters are lists. Parameters without either are left out (a `!Sub`
    or `!Ref` of one is then an error, raised where it is used).
    """
    env = os.environ if env is None else env
    values = {}
    for name, spec in (template.get("Parameters") or {}).items():
        spec = spec or {}
        raw = env.get(PARAMETER_ENV[name]) if name in PARAMETER_ENV else None
        if raw is None:
            if "Default" not in spec:
                continue
            raw = spec["Default"]
        if spec.get("Type") == "CommaDelimitedList":
            items = raw if isinstance(raw, list) else str(raw).split(",")
            values[name] = [str(item).strip() for item in items if str(item).strip()]
        else:
            values[name] = str(raw)
    return values


_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def resolve(value, params: dict):
    """A template value with `!Ref` and `!Sub` of parameters resolved (enough for paths and CORS)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [resolve(item, params) for item in value]
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            if arg not in params:
                raise TemplateError(f"!Ref {arg}: not a parameter with a default")
            return params[arg]
        if key == "Fn::Sub":
            text, local = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})

            def substitute(match):
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name in local:
                    return str(resolve(local[name], params))
                if name not in params:
                    raise TemplateError(f"!Sub {text!r}: ${{{name}}} is not a parameter with a default")
                resolved = params[name]
                return ",".join(resolved) if isinstance(resolved, list) else str(resolved)

            return _SUB_VAR.sub(substitute, text)
        if key.startswith("Fn::") or key == "Condition":
            raise TemplateError(f"{key} cannot be resolved locally: {value!r}")
    if isinstance(value, dict):
        return {k: resolve(v, params) for k, v in value.items()}
    raise TemplateError(f"cannot resolve {value!r}")


@dataclass(frozen=True)
class Route:
    method: str  # "ANY" or an upper-case verb
    path: str  # e.g. "/api/v1/notifications/sms-opt-in" or "/items/{id}"; "$default" for the default route
    function: str  # cargo package name, e.g. "opt-in-api"
    resource: str = ""  # logical id in template.yaml

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/")[1:]]


def read_routes(template: dict, params: dict) -> list[Route]:
    """Every HttpApi event of every AWS::Serverless::Function, in template order."""
    routes = []
    global_code_uri = (((template.get("Globals") or {}).get("Function")) or {}).get("CodeUri")
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties") or {}
        events = [e for e in (props.get("Events") or {}).values() if isinstance(e, dict) and e.get("Type") == "HttpApi"]
        if not events:
            continue
        code_uri = props.get("CodeUri", global_code_uri)
        if not isinstance(code_uri, str) or not code_uri.strip("/"):
            raise TemplateError(f"{logical_id}: CodeUri must be a local path like functions/<name>, not {code_uri!r}")
        function = code_uri.rstrip("/").split("/")[-1]
        for event in events:
            ev = event.get("Properties") or {}
            path = resolve(ev.get("Path"), params) if "Path" in ev else None
            method = str(resolve(ev.get("Method"), params) or "ANY").upper() if "Method" in ev else None
            if path is None and method is None:
                routes.append(Route("ANY", "$default", function, logical_id))
                continue
            if not isinstance(path, str) or not path.startswith("/"):
                raise TemplateError(f"{logical_id}: HttpApi Path {path!r} does not start with /")
            routes.append(Route(method or "ANY", path, function, logical_id))
    return routes


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None


def read_cors(template: dict, params: dict) -> Cors | None:
    """The CorsConfiguration of the (first) AWS::Serverless::HttpApi, resolved; None without one."""
    for resource in (template.get("Resources") or {}).values():
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        config = (resource.get("Properties") or {}).get("CorsConfiguration")
        if not config:
            return None
        if config is True:  # SAM: `CorsConfiguration: true` allows any origin, no credentials
            return Cors(allow_origins=("*",), allow_methods=("*",), allow_headers=("*",))
        config = resolve(config, params)

        def strings(name):
            value = config.get(name) or []
            if isinstance(value, str):
                value = value.split(",")
            return tuple(str(v).strip() for v in value if str(v).strip())

        max_age = config.get("MaxAge")
        return Cors(
            allow_origins=strings("AllowOrigins"),
            allow_methods=strings("AllowMethods"),
            allow_headers=strings("AllowHeaders"),
            expose_headers=strings("ExposeHeaders"),
            allow_credentials=str(config.get("AllowCredentials", False)).lower() == "true",
            max_age=None if max_age is None else int(max_age),
        )
    return None


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


def _match_segments(pattern: list[str], parts: list[str]):
    """Path parameters when `parts` match `pattern`, else None."""
    params = {}
    for i, seg in enumerate(pattern):
        if seg.startswith("{") and seg.endswith("+}"):
            rest = parts[i:]
            if not rest or rest == [""]:
                return None
            params[seg[1:-2]] = "/".join(rest)
            return params
        if i >= len(parts):
            return None
        if seg.startswith("{") and seg.endswith("}"):
            if parts[i] == "":
                return None
            params[seg[1:-1]] = parts[i]
        elif seg != parts[i]:
            return None
    return params if len(parts) == len(pattern) else None


def _specificity(route: Route):
    """Sort key: the most specific route first (static segments before {param} before {proxy+}, a verb before ANY)."""
    if route.path == "$default":
        return (3,)
    rank = []
    for seg in route.segments:
        if seg.startswith("{") and seg.endswith("+}"):
            rank.append(2)
        elif seg.startswith("{") and seg.endswith("}"):
            rank.append(1)
        else:
            rank.append(0)
    return (2 if 2 in rank else 0, rank, route.method == "ANY")


def match_route(routes: list[Route], method: str, path: str):
    """(route, path parameters) for a request, or None. `path` is the raw path, trailing slash and all."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]  # API Gateway routes /x/ to the route /x
    parts = [unquote(p) for p in path.split("/")[1:]]
    method = method.upper()
    for route in sorted(routes, key=_specificity):
        if route.method not in ("ANY", method):
            continue
        if route.path == "$default":
            return route, {}
        params = _match_segments(route.segments, parts)
        if params is not None:
            return route, params
    return None


# --------------------------------------------------------------------------------------------
# CORS
# --------------------------------------------------------------------------------------------


def _header(headers, name: str):
    """The first value of a header (case-insensitive) in a list of (name, value) pairs."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def origin_allowed(cors: Cors | None, origin: str | None) -> bool:
    if cors is None or not origin:
        return False
    origin = origin.strip().lower()
    return any(o == "*" or o.lower() == origin for o in cors.allow_origins)


def _allow_origin_value(cors: Cors, origin: str) -> str:
    # API Gateway echoes the request's origin; `*` only when configured and without credentials.
    if not cors.allow_credentials and "*" in cors.allow_origins:
        return "*"
    return origin


def is_preflight(method: str, headers) -> bool:
    return (
        method.upper() == "OPTIONS"
        and bool(_header(headers, "origin"))
        and bool(_header(headers, "access-control-request-method"))
    )


def preflight_response(cors: Cors | None, headers):
    """API Gateway's own answer to a CORS preflight: 204, with the CORS headers only when all is allowed."""
    origin = _header(headers, "origin")
    requested_method = (_header(headers, "access-control-request-method") or "").strip().upper()
    requested_headers = [
        h.strip().lower() for h in (_header(headers, "access-control-request-headers") or "").split(",") if h.strip()
    ]
    out = [("Content-Length", "0")]
    if not origin_allowed(cors, origin):
        return 204, out, b""
    methods = {m.upper() for m in cors.allow_methods}
    if "*" not in methods and requested_method not in methods:
        return 204, out, b""
    allowed_headers = {h.lower() for h in cors.allow_headers}
    if "*" not in allowed_headers and any(h not in allowed_headers for h in requested_headers):
        return 204, out, b""
    out.append(("Access-Control-Allow-Origin", _allow_origin_value(cors, origin)))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    out.append(("Access-Control-Allow-Methods", ",".join(cors.allow_methods)))
    if cors.allow_headers:
        out.append(("Access-Control-Allow-Headers", ",".join(cors.allow_headers)))
    if cors.max_age is not None:
        out.append(("Access-Control-Max-Age", str(cors.max_age)))
    out.append(("Vary", "Origin"))
    return 204, out, b""


def with_cors(cors: Cors | None, request_headers, response_headers):
    """A (non-preflight) response's headers as API Gateway sends them: the function's own
    Access-Control-* headers dropped, and the configured ones added when the origin is allowed."""
    if cors is None:
        return list(response_headers)
    out = [(k, v) for k, v in response_headers if not k.lower().startswith("access-control-")]
    origin = _header(request_headers, "origin")
    if not origin_allowed(cors, origin):
        return out
    out.append(("Access-Control-Allow-Origin", _allow_origin_value(cors, origin)))
    if cors.allow_credentials:
        out.append(("Access-Control-Allow-Credentials", "true"))
    if cors.expose_headers:
        out.append(("Access-Control-Expose-Headers", ",".join(cors.expose_headers)))
    vary = [v for k, v in out if k.lower() == "vary"]
    if not any("origin" in [p.strip().lower() for p in v.split(",")] for v in vary):
        out.append(("Vary", "Origin"))
    return out


# --------------------------------------------------------------------------------------------
# The payload v2 event
# --------------------------------------------------------------------------------------------


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def source_ip(peer: str, headers) -> str:
    """The peer address; from a loopback peer, the first X-Forwarded-For address (local only)."""
    forwarded = _header(headers, "x-forwarded-for")
    if forwarded and _is_loopback(peer):
        first = forwarded.split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(first))
        except ValueError:
            pass
    return peer


def build_event(route: Route, path_params: dict, method: str, target: str, headers, body: bytes,
                peer: str, request_id: str | None = None, now: datetime | None = None, port: int | None = None) -> dict:
    """The API Gateway HTTP API payload (format 2.0) for one request.

    `target` is the request target as sent (path and query); `headers` a list of (name, value)
    pairs in the order received, repeats included.
    """
    now = now or datetime.now(timezone.utc)
    request_id = request_id or str(uuid.uuid4())
    split = urlsplit(target)
    raw_path = split.path or "/"
    raw_query = split.query

    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    ip = source_ip(peer, headers)
    # What API Gateway adds on the way in.
    forwarded = merged.get("x-forwarded-for")
    merged["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
    merged.setdefault("x-forwarded-proto", "http")
    if port is not None:
        merged.setdefault("x-forwarded-port", str(port))
    merged.setdefault(
        "x-amzn-trace-id", f"Root=1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"
    )

    host = merged.get("host", "localhost")
    domain = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    event = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = merged
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": domain,
        "domainPrefix": domain.split(".")[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": ip,
            "userAgent": merged.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route.route_key,
        "stage": "$default",
        "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(now.timestamp() * 1000),
    }
    if path_params:
        event["pathParameters"] = path_params
    if body:
        try:
            event["body"] = body.decode("utf-8")
            event["isBase64Encoded"] = False
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


# --------------------------------------------------------------------------------------------
# The function's answer
# --------------------------------------------------------------------------------------------


def convert_response(status: int, payload: bytes):
    """(status, headers, body) of the HTTP response API Gateway makes of a function's answer.

    `status` and `payload` are what the invoke endpoint answered. Raises FunctionError when the
    function failed (an invoke status other than 200, or an `errorType`/`errorMessage` answer)
    or its answer is not a payload v2 response.
    """
    text = payload.decode("utf-8", errors="replace")
    if status != 200:
        raise FunctionError(f"invoke endpoint answered {status}: {text[:2000]}")
    try:
        answer = json.loads(payload) if payload.strip() else None
    except ValueError:
        raise FunctionError(f"the function's answer is not JSON: {text[:2000]}") from None
    if isinstance(answer, dict) and ("errorType" in answer or "errorMessage" in answer) and "statusCode" not in answer:
        raise FunctionError(f"{answer.get('errorType', 'Error')}: {answer.get('errorMessage', '')}")
    if not isinstance(answer, dict) or "statusCode" not in answer:
        # Payload v2: valid JSON without a statusCode is a 200 with that JSON as its body.
        return 200, [("Content-Type", "application/json")], json.dumps(answer).encode()
    try:
        code = int(answer["statusCode"])
    except (TypeError, ValueError):
        raise FunctionError(f"statusCode {answer['statusCode']!r} is not a number") from None
    if not 100 <= code <= 599:
        raise FunctionError(f"statusCode {code} is not an HTTP status")

    headers: dict[str, list[tuple[str, str]]] = {}
    for name, value in (answer.get("headers") or {}).items():
        headers[name.lower()] = [(name, str(value))]
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        values = values if isinstance(values, list) else [values]
        headers[name.lower()] = [(name, str(v)) for v in values]
    out = [pair for key, pairs in headers.items() if key not in _FRAMING for pair in pairs]
    for cookie in answer.get("cookies") or []:
        out.append(("Set-Cookie", str(cookie)))

    body = answer.get("body")
    if body is None:
        data = b""
    elif answer.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (ValueError, TypeError):
            raise FunctionError("isBase64Encoded is true but the body is not base64") from None
    else:
        data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
    return code, out, data


def invoke(watch_url: str, function: str, event: dict, timeout: float):
    """POSTs the event to cargo lambda watch's invoke endpoint: (status, body bytes)."""
    request = urllib.request.Request(
        f"{watch_url}/2015-03-31/functions/{function}/invocations",
        data=json.dumps(event).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# --------------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------------


@dataclass
class Result:
    status: int
    headers: list
    body: bytes
    function: str = "-"
    request_id: str = ""


@dataclass
class Gateway:
    routes: list
    cors: Cors | None
    watch_url: str
    invoke_timeout: float = 900.0
    port: int | None = None
    log_errors: object = field(default=sys.stderr, repr=False)

    @classmethod
    def from_template(cls, path: str, watch_url: str, env=None, **kwargs) -> "Gateway":
        template = load_template(path)
        params = template_parameters(template, env)
        return cls(read_routes(template, params), read_cors(template, params), watch_url, **kwargs)

    def handle(self, method: str, target: str, headers, body: bytes, peer: str) -> Result:
        """One request, start to end, as API Gateway would answer it."""
        request_id = str(uuid.uuid4())
        if self.cors is not None and is_preflight(method, headers):
            status, out, data = preflight_response(self.cors, headers)
            return Result(status, out + [("Apigw-Requestid", request_id)], data, "(preflight)", request_id)
        path = urlsplit(target).path or "/"
        found = match_route(self.routes, method, path)
        if found is None:
            status, out, data = NOT_FOUND
            function = "(no route)"
        else:
            route, params = found
            function = route.function
            event = build_event(route, params, method, target, headers, body, peer, request_id, port=self.port)
            try:
                status, out, data = convert_response(*invoke(self.watch_url, function, event, self.invoke_timeout))
            except (FunctionError, OSError) as error:
                detail = error
                if isinstance(error, OSError):
                    detail = f"{error} (is `cargo lambda watch` serving {self.watch_url}?)"
                print(f"local-api: {route.route_key} -> {function} failed ({request_id}): {detail}",
                      file=self.log_errors, flush=True)
                status, out, data = INTERNAL_ERROR
        out = with_cors(self.cors, headers, out)
        return Result(status, out + [("Apigw-Requestid", request_id)], data, function, request_id)


def _read_chunked(rfile) -> bytes:
    data = bytearray()
    while True:
        line = rfile.readline(65537)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(data)
        data += rfile.read(size)
        rfile.readline(65537)


def make_handler(gateway: Gateway, log=sys.stdout):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in one write (flushed after each request), without Nagle's delay.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def _serve(self):
            started = time.monotonic()
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = _read_chunked(self.rfile)
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                result = gateway.handle(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            except Exception:  # a bug here must not kill the connection silently
                traceback.print_exc()
                status, out, data = INTERNAL_ERROR
                result = Result(status, list(out), data, "(local-api error)")
            self.send_response(result.status)
            for name, value in result.headers:
                if name.lower() not in _FRAMING:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(result.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(result.body)
            ms = (time.monotonic() - started) * 1000
            print(f"{self.command} {self.path} -> {result.function} {result.status} {ms:.0f} ms", file=log, flush=True)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def log_message(self, format, *args):  # one line per request is printed by _serve
            pass

        def version_string(self):
            return "local-api"

    return Handler


def describe(routes: list[Route]) -> str:
    return ", ".join(f"{r.route_key} -> {r.function}" for r in routes)


def serve(gateway: Gateway, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(gateway))
    server.daemon_threads = True
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_API_PORT") or 3000))
    parser.add_argument("--watch-port", type=int, default=int(os.environ.get("WATCH_PORT") or 9000))
    parser.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--invoke-timeout", type=float, default=900.0,
                        help="seconds to wait for a function (its first call compiles it)")
    args = parser.parse_args(argv)

    try:
        gateway = Gateway.from_template(args.template, f"http://127.0.0.1:{args.watch_port}",
                                        invoke_timeout=args.invoke_timeout, port=args.port)
    except (OSError, yaml.YAMLError, TemplateError) as error:
        print(f"local-api: cannot read {args.template}: {error}", file=sys.stderr)
        return 2
    if not gateway.routes:
        print(f"local-api: no HttpApi routes in {args.template}", file=sys.stderr)
        return 2
    try:
        server = serve(gateway, args.host, args.port)
    except OSError as error:
        print(f"local-api: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    origins = ",".join(gateway.cors.allow_origins) if gateway.cors else "none"
    print(f"local-api: http://{args.host}:{args.port} -> cargo lambda watch on 127.0.0.1:{args.watch_port}; "
          f"routes: {describe(gateway.routes)}; CORS origins: {origins}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
