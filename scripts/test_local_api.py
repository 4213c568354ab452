"""Unit tests of scripts/local_api.py: routes read from the real template.yaml, matching, CORS,
the payload v2 event and the response conversion, and the server itself against a fake
invoke endpoint (no cargo). Run:

    .venv/bin/python -m unittest scripts/test_local_api.py
    .venv/bin/python -m unittest discover -s scripts -p 'test_*.py'
"""

import base64
import http.client
import json
import os
import sys
import threading
import unittest
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import local_api  # noqa: E402
from local_api import Cors, Route  # noqa: E402

TEMPLATE = os.path.join(local_api.ROOT, "template.yaml")
OPT_IN = "/api/v1/notifications/sms-opt-in"
ORIGIN = "http://localhost:5173"
CORS = Cors(
    allow_origins=(ORIGIN, "https://App.Example.com"),
    allow_methods=("GET", "POST", "PATCH", "OPTIONS"),
    allow_headers=("content-type", "x-csrftoken", "authorization"),
    expose_headers=("retry-after",),
    allow_credentials=True,
    max_age=600,
)


def headers_dict(pairs):
    out = {}
    for k, v in pairs:
        out.setdefault(k.lower(), []).append(v)
    return out


class TemplateRoutes(unittest.TestCase):
    def setUp(self):
        self.template = local_api.load_template(TEMPLATE)

    def test_routes_are_read_from_the_template(self):
        params = local_api.template_parameters(self.template, env={})
        routes = {(r.route_key, r.function) for r in local_api.read_routes(self.template, params)}
        self.assertEqual(routes, {
            ("ANY /api/v1/notifications/sms-opt-in", "opt-in-api"),
            ("ANY /api/v1/notifications/me/sms-preferences", "opt-in-api"),
            ("ANY /api/v1/notifications/me/phone-verification", "verify-api"),
            ("ANY /api/v1/notifications/me/phone-verification/check", "verify-api"),
        })

    def test_api_base_path_from_the_environment(self):
        params = local_api.template_parameters(self.template, env={"API_BASE_PATH": "/v2"})
        paths = {r.path for r in local_api.read_routes(self.template, params)}
        self.assertIn("/v2/notifications/sms-opt-in", paths)
        self.assertTrue(all(p.startswith("/v2/notifications/") for p in paths))

    def test_cors_from_the_template_and_allowed_origins_from_the_environment(self):
        params = local_api.template_parameters(self.template, env={})
        cors = local_api.read_cors(self.template, params)
        self.assertEqual(cors.allow_origins, tuple(self.template["Parameters"]["AllowedOrigins"]["Default"].split(",")))
        self.assertTrue(cors.allow_credentials)
        self.assertIn("x-csrftoken", cors.allow_headers)
        self.assertIn("PATCH", cors.allow_methods)
        self.assertEqual(cors.expose_headers, ("retry-after",))
        self.assertEqual(cors.max_age, 600)
        env = {"ALLOWED_ORIGINS": "http://localhost:5173, http://127.0.0.1:5173"}
        cors = local_api.read_cors(self.template, local_api.template_parameters(self.template, env=env))
        self.assertEqual(cors.allow_origins, ("http://localhost:5173", "http://127.0.0.1:5173"))

    def test_short_tags_are_read(self):
        opt_in = self.template["Resources"]["OptInApiFunction"]["Properties"]["Events"]["OptIn"]["Properties"]
        self.assertEqual(opt_in["ApiId"], {"Ref": "HttpApi"})
        self.assertIn("Fn::Sub", opt_in["Path"])

    def test_unresolvable_sub_is_an_error(self):
        with self.assertRaises(local_api.TemplateError):
            local_api.resolve({"Fn::Sub": "${AWS::Region}/x"}, {})
        self.assertEqual(local_api.resolve({"Fn::Sub": "${!Literal}/${A}"}, {"A": "a"}), "${Literal}/a")


class Matching(unittest.TestCase):
    def setUp(self):
        template = local_api.load_template(TEMPLATE)
        self.routes = local_api.read_routes(template, local_api.template_parameters(template, env={}))

    def match(self, method, path, routes=None):
        found = local_api.match_route(routes or self.routes, method, path)
        return None if found is None else (found[0].function, found[0].path, found[1])

    def test_with_and_without_trailing_slash(self):
        self.assertEqual(self.match("GET", OPT_IN), ("opt-in-api", OPT_IN, {}))
        self.assertEqual(self.match("POST", OPT_IN + "/"), ("opt-in-api", OPT_IN, {}))
        check = "/api/v1/notifications/me/phone-verification/check"
        self.assertEqual(self.match("POST", check + "/")[:2], ("verify-api", check))
        self.assertEqual(self.match("POST", "/api/v1/notifications/me/phone-verification/")[0], "verify-api")

    def test_no_route(self):
        self.assertIsNone(self.match("GET", OPT_IN + "//"))
        self.assertIsNone(self.match("GET", "/notifications/sms-opt-in/"))
        self.assertIsNone(self.match("GET", "/api/v1/notifications/sms-opt-in/extra"))
        self.assertIsNone(self.match("GET", "/"))

    def test_params_greedy_and_specificity(self):
        routes = [
            Route("ANY", "/files/{proxy+}", "greedy"),
            Route("GET", "/items/{id}", "get-item"),
            Route("ANY", "/items/{id}", "any-item"),
            Route("GET", "/items/new", "new-item"),
        ]
        self.assertEqual(self.match("GET", "/items/7/", routes), ("get-item", "/items/{id}", {"id": "7"}))
        self.assertEqual(self.match("DELETE", "/items/7", routes), ("any-item", "/items/{id}", {"id": "7"}))
        self.assertEqual(self.match("GET", "/items/new", routes)[0], "new-item")
        self.assertEqual(self.match("GET", "/items/a%20b", routes)[2], {"id": "a b"})
        self.assertEqual(self.match("GET", "/files/a/b/c", routes)[2], {"proxy": "a/b/c"})
        self.assertIsNone(self.match("GET", "/files", routes))
        self.assertIsNone(self.match("GET", "/items/", routes))


class CorsRules(unittest.TestCase):
    def test_preflight_allowed(self):
        request = [("Origin", ORIGIN), ("Access-Control-Request-Method", "POST"),
                   ("Access-Control-Request-Headers", "Content-Type, X-CSRFToken")]
        self.assertTrue(local_api.is_preflight("OPTIONS", request))
        status, headers, body = local_api.preflight_response(CORS, request)
        h = headers_dict(headers)
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(h["access-control-allow-origin"], [ORIGIN])
        self.assertEqual(h["access-control-allow-credentials"], ["true"])
        self.assertEqual(h["access-control-allow-methods"], ["GET,POST,PATCH,OPTIONS"])
        self.assertEqual(h["access-control-allow-headers"], ["content-type,x-csrftoken,authorization"])
        self.assertEqual(h["access-control-max-age"], ["600"])
        self.assertEqual(h["vary"], ["Origin"])

    def test_origin_matches_case_insensitively_and_is_echoed(self):
        request = [("Origin", "https://app.example.COM"), ("Access-Control-Request-Method", "GET")]
        h = headers_dict(local_api.preflight_response(CORS, request)[1])
        self.assertEqual(h["access-control-allow-origin"], ["https://app.example.COM"])

    def test_preflight_denied(self):
        for request in (
            [("Origin", "http://evil.example"), ("Access-Control-Request-Method", "POST")],
            [("Origin", ORIGIN), ("Access-Control-Request-Method", "DELETE")],
            [("Origin", ORIGIN), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "x-other")],
        ):
            status, headers, _ = local_api.preflight_response(CORS, request)
            self.assertEqual(status, 204)
            self.assertFalse([k for k, _ in headers if k.lower().startswith("access-control-")], request)

    def test_not_a_preflight(self):
        self.assertFalse(local_api.is_preflight("OPTIONS", [("Origin", ORIGIN)]))
        self.assertFalse(local_api.is_preflight("GET", [("Origin", ORIGIN), ("Access-Control-Request-Method", "GET")]))

    def test_ordinary_response(self):
        function_headers = [("Content-Type", "application/json"), ("Access-Control-Allow-Origin", "*")]
        h = headers_dict(local_api.with_cors(CORS, [("Origin", ORIGIN)], function_headers))
        self.assertEqual(h["access-control-allow-origin"], [ORIGIN])
        self.assertEqual(h["access-control-allow-credentials"], ["true"])
        self.assertEqual(h["access-control-expose-headers"], ["retry-after"])
        self.assertEqual(h["vary"], ["Origin"])
        h = headers_dict(local_api.with_cors(CORS, [("Origin", "http://evil.example")], function_headers))
        self.assertEqual(set(h), {"content-type"})
        h = headers_dict(local_api.with_cors(CORS, [], function_headers))
        self.assertEqual(set(h), {"content-type"})


class Event(unittest.TestCase):
    ROUTE = Route("ANY", OPT_IN, "opt-in-api")
    NOW = datetime(2025, 3, 12, 19, 3, 58, 123000, tzinfo=timezone.utc)

    def event(self, headers, peer="127.0.0.1", body=b"", target=OPT_IN + "/?a=1&b=2&a=3", method="POST"):
        return local_api.build_event(self.ROUTE, {}, method, target, headers, body, peer, "req-1", self.NOW, 3000)

    def test_shape(self):
        headers = [("Host", "127.0.0.1:3000"), ("User-Agent", "curl/8"), ("Cookie", "access_token=abc; csrftoken=def"),
                   ("Cookie", "x=1"), ("X-CSRFToken", "def"), ("Accept", "a"), ("Accept", "b"),
                   ("Content-Type", "application/json")]
        e = self.event(headers, body=b'{"action":"opt_in"}')
        self.assertEqual(e["version"], "2.0")
        self.assertEqual(e["routeKey"], "ANY " + OPT_IN)
        self.assertEqual(e["rawPath"], OPT_IN + "/")
        self.assertEqual(e["rawQueryString"], "a=1&b=2&a=3")
        self.assertEqual(e["queryStringParameters"], {"a": "1,3", "b": "2"})
        self.assertEqual(e["cookies"], ["access_token=abc", "csrftoken=def", "x=1"])
        self.assertNotIn("cookie", e["headers"])
        self.assertEqual(e["headers"]["x-csrftoken"], "def")
        self.assertEqual(e["headers"]["accept"], "a,b")
        self.assertTrue(all(k == k.lower() for k in e["headers"]))
        self.assertEqual(e["body"], '{"action":"opt_in"}')
        self.assertIs(e["isBase64Encoded"], False)
        self.assertNotIn("pathParameters", e)
        ctx = e["requestContext"]
        self.assertEqual(ctx["http"], {"method": "POST", "path": OPT_IN + "/", "protocol": "HTTP/1.1",
                                       "sourceIp": "127.0.0.1", "userAgent": "curl/8"})
        self.assertEqual((ctx["accountId"], ctx["apiId"], ctx["stage"], ctx["requestId"], ctx["routeKey"]),
                         ("000000000000", "local", "$default", "req-1", "ANY " + OPT_IN))
        self.assertEqual((ctx["domainName"], ctx["domainPrefix"]), ("127.0.0.1", "127"))
        self.assertEqual(ctx["time"], "12/Mar/2025:19:03:58 +0000")
        self.assertEqual(ctx["timeEpoch"], 1741806238123)
        json.dumps(e)  # serialisable

    def test_no_body_no_cookies_no_query(self):
        e = self.event([("Host", "localhost:3000")], target=OPT_IN, method="GET")
        self.assertNotIn("body", e)
        self.assertNotIn("cookies", e)
        self.assertNotIn("queryStringParameters", e)
        self.assertEqual(e["rawQueryString"], "")
        self.assertIs(e["isBase64Encoded"], False)

    def test_binary_body_is_base64(self):
        e = self.event([], body=b"\xff\x00\x01")
        self.assertIs(e["isBase64Encoded"], True)
        self.assertEqual(base64.b64decode(e["body"]), b"\xff\x00\x01")

    def test_path_parameters(self):
        e = local_api.build_event(Route("GET", "/items/{id}", "f"), {"id": "7"}, "GET", "/items/7", [], b"", "127.0.0.1")
        self.assertEqual(e["pathParameters"], {"id": "7"})
        self.assertEqual(e["routeKey"], "GET /items/{id}")

    def test_source_ip_from_x_forwarded_for_only_from_loopback(self):
        xff = [("X-Forwarded-For", "203.0.113.7, 10.0.0.1")]
        self.assertEqual(self.event(xff, peer="127.0.0.1")["requestContext"]["http"]["sourceIp"], "203.0.113.7")
        self.assertEqual(self.event(xff, peer="::1")["requestContext"]["http"]["sourceIp"], "203.0.113.7")
        self.assertEqual(self.event(xff, peer="192.0.2.10")["requestContext"]["http"]["sourceIp"], "192.0.2.10")
        self.assertEqual(self.event([("X-Forwarded-For", "junk")], peer="127.0.0.1")["requestContext"]["http"]["sourceIp"],
                         "127.0.0.1")
        self.assertEqual(self.event([], peer="127.0.0.1")["requestContext"]["http"]["sourceIp"], "127.0.0.1")
        # API Gateway appends the peer to X-Forwarded-For.
        self.assertEqual(self.event(xff, peer="127.0.0.1")["headers"]["x-forwarded-for"], "203.0.113.7, 10.0.0.1, 127.0.0.1")


class ResponseConversion(unittest.TestCase):
    def test_v2_response(self):
        answer = {"statusCode": 201, "headers": {"Content-Type": "application/json", "X-A": "1", "Content-Length": "99"},
                  "multiValueHeaders": {"x-a": ["2", "3"]}, "cookies": ["a=1; Path=/", "b=2"],
                  "body": '{"success":true}', "isBase64Encoded": False}
        status, headers, body = local_api.convert_response(200, json.dumps(answer).encode())
        h = headers_dict(headers)
        self.assertEqual(status, 201)
        self.assertEqual(body, b'{"success":true}')
        self.assertEqual(h["x-a"], ["2", "3"])
        self.assertEqual(h["set-cookie"], ["a=1; Path=/", "b=2"])
        self.assertNotIn("content-length", h)

    def test_base64_body(self):
        answer = {"statusCode": 200, "body": base64.b64encode(b"\x00\xff").decode(), "isBase64Encoded": True}
        self.assertEqual(local_api.convert_response(200, json.dumps(answer).encode())[2], b"\x00\xff")

    def test_json_without_status_code_is_a_200(self):
        status, headers, body = local_api.convert_response(200, b'{"hello":"world"}')
        self.assertEqual((status, json.loads(body)), (200, {"hello": "world"}))
        self.assertEqual(headers_dict(headers)["content-type"], ["application/json"])

    def test_errors(self):
        for status, payload in (
            (500, b'{"errorType":"Panic","errorMessage":"boom"}'),
            (200, b'{"errorType":"InitError","errorMessage":"missing JWT_SIGNING_KEY_SECRET_ID"}'),
            (404, b'{"title":"Missing function"}'),
            (200, b"not json"),
            (200, b'{"statusCode":"abc"}'),
        ):
            with self.assertRaises(local_api.FunctionError, msg=payload):
                local_api.convert_response(status, payload)


class FakeInvoke:
    """A stand-in for `cargo lambda watch`'s invoke endpoint: records events, answers per function."""

    def __init__(self):
        self.events = []
        self.answers = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                parts = self.path.split("/")
                assert parts[1:3] == ["2015-03-31", "functions"] and parts[4] == "invocations", self.path
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.events.append((parts[3], event))
                status, answer = fake.answers.get(parts[3], (200, {
                    "statusCode": 200, "headers": {"content-type": "application/json"},
                    "cookies": ["seen=1; Path=/"], "body": json.dumps({"path": event["rawPath"], "function": parts[3]}),
                }))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Server(unittest.TestCase):
    """The real server (keep-alive, Content-Length, HEAD) in front of the fake invoke endpoint."""

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeInvoke()
        env = {"ALLOWED_ORIGINS": ORIGIN}
        cls.errors = open(os.devnull, "w")
        cls.log = open(os.devnull, "w")
        gateway = local_api.Gateway.from_template(TEMPLATE, cls.fake.url, env=env, invoke_timeout=10,
                                                  log_errors=cls.errors)
        cls.server = local_api.ThreadingHTTPServer(("127.0.0.1", 0), local_api.make_handler(gateway, log=cls.log))
        cls.server.daemon_threads = True
        cls.port = cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.fake.close()
        cls.errors.close()
        cls.log.close()

    def setUp(self):
        self.fake.events.clear()
        self.fake.answers.clear()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def tearDown(self):
        self.conn.close()

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(), response

    def test_keep_alive_routing_and_cookies(self):
        status, headers, body, _ = self.request(
            "POST", OPT_IN + "/", body=b'{"action":"opt_in"}',
            headers={"Cookie": "access_token=t; csrftoken=c", "X-CSRFToken": "c", "Content-Type": "application/json",
                     "Origin": ORIGIN, "X-Forwarded-For": "198.51.100.9"})
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"path": OPT_IN + "/", "function": "opt-in-api"})
        self.assertEqual(headers["content-length"], str(len(body)))
        self.assertEqual(headers["set-cookie"], "seen=1; Path=/")
        self.assertEqual(headers["access-control-allow-origin"], ORIGIN)
        self.assertIn("apigw-requestid", headers)
        function, event = self.fake.events[-1]
        self.assertEqual(function, "opt-in-api")
        self.assertEqual(event["cookies"], ["access_token=t", "csrftoken=c"])
        self.assertEqual(event["body"], '{"action":"opt_in"}')
        self.assertEqual(event["requestContext"]["http"]["sourceIp"], "198.51.100.9")
        self.assertEqual(event["requestContext"]["requestId"], headers["apigw-requestid"])
        # Same connection, second request.
        status, _, body, _ = self.request("GET", "/api/v1/notifications/me/phone-verification/check")
        self.assertEqual((status, json.loads(body)["function"]), (200, "verify-api"))
        self.assertEqual(self.fake.events[-1][1]["requestContext"]["http"]["method"], "GET")

    def test_not_found(self):
        status, headers, body, _ = self.request("GET", "/api/v1/nothing")
        self.assertEqual((status, json.loads(body)), (404, {"message": "Not Found"}))
        self.assertEqual(self.fake.events, [])

    def test_preflight_is_answered_by_the_gateway(self):
        status, headers, body, _ = self.request("OPTIONS", OPT_IN + "/", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "x-csrftoken"})
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(headers["access-control-allow-origin"], ORIGIN)
        status, headers, _, _ = self.request("OPTIONS", OPT_IN, headers={
            "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
        self.assertEqual(status, 204)
        self.assertNotIn("access-control-allow-origin", headers)  # ALLOWED_ORIGINS replaced the default
        self.assertEqual(self.fake.events, [])
        # An OPTIONS that is not a preflight goes to the function (ANY route).
        status, _, _, _ = self.request("OPTIONS", OPT_IN)
        self.assertEqual((status, self.fake.events[-1][0]), (200, "opt-in-api"))

    def test_head_has_length_and_no_body(self):
        status, headers, body, _ = self.request("HEAD", OPT_IN)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertGreater(int(headers["content-length"]), 0)
        status, _, _, _ = self.request("GET", OPT_IN)  # the connection is still in step
        self.assertEqual(status, 200)

    def test_function_error_is_a_500(self):
        self.fake.answers["opt-in-api"] = (500, {"errorType": "Panic", "errorMessage": "boom"})
        status, headers, body, _ = self.request("GET", OPT_IN, headers={"Origin": ORIGIN})
        self.assertEqual((status, json.loads(body)), (500, {"message": "Internal Server Error"}))
        self.assertEqual(headers["access-control-allow-origin"], ORIGIN)

    def test_status_and_headers_of_the_function(self):
        self.fake.answers["verify-api"] = (200, {"statusCode": 429, "headers": {"Retry-After": "30",
                                                 "content-type": "application/json"}, "body": '{"code":"rate_limited"}'})
        status, headers, body, _ = self.request("POST", "/api/v1/notifications/me/phone-verification/", body=b"{}",
                                                headers={"Origin": ORIGIN})
        self.assertEqual((status, headers["retry-after"], json.loads(body)), (429, "30", {"code": "rate_limited"}))
        self.assertEqual(headers["access-control-expose-headers"], "retry-after")

    def test_chunked_request_body(self):
        self.conn.putrequest("POST", OPT_IN)
        self.conn.putheader("Transfer-Encoding", "chunked")
        self.conn.endheaders()
        self.conn.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        response = self.conn.getresponse()
        response.read()
        self.assertEqual(response.status, 200)
        self.assertEqual(self.fake.events[-1][1]["body"], "hello world")

    def test_watch_not_running_is_a_500(self):
        gateway = local_api.Gateway([Route("ANY", "/x", "f")], None, "http://127.0.0.1:9", invoke_timeout=2,
                                    log_errors=self.errors)
        result = gateway.handle("GET", "/x", [], b"", "127.0.0.1")
        self.assertEqual((result.status, result.body), (500, b'{"message":"Internal Server Error"}'))


if __name__ == "__main__":
    unittest.main()
