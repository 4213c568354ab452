"""What the local tools share: the local stack's settings, its AWS clients, the local API's
client (token, CSRF, client address), the functions' invoke endpoint, the console sender's output.

Used by scripts/demo.py (`make demo`), scripts/seed.py (`make seed`), scripts/send.py
(`make send`) and scripts/reset_limits.py (`make reset-limits`). Standard library and boto3
(from .venv) only. Settings come from .local/dev.env (written by scripts/dev.sh), the
environment overriding them; the tools only ever talk to the local endpoint in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import dev_token

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(ROOT, ".local")
DEV_ENV = os.path.join(LOCAL, "dev.env")
# Where `make dev`'s `cargo lambda watch` writes (scripts/dev.sh): the [CONSOLE SMS] blocks.
DEV_WATCH_LOG = os.path.join(LOCAL, "watch.log")

# The sample user of events/ (the SQS requests' `userId`, the HTTP events' token) and its number.
SAMPLE_USER = "u-42"
SAMPLE_PHONE = "+14155550123"


class StackError(Exception):
    """The local stack is not there or not in the expected state, in words for the developer."""


def settings() -> dict:
    env = dev_token.load_settings(DEV_ENV)
    if not env.get("AWS_ENDPOINT_URL") or not env.get("LOG_TABLE"):
        raise StackError("no local stack: start it with `make dev` (or `make stack`) first")
    return env


class Stack:
    """The local stack of .local/dev.env: ports, tables, queues, and boto3 clients for them."""

    def __init__(self, env: dict | None = None):
        self.env = env if env is not None else settings()
        self.watch_port = int(self.env.get("WATCH_PORT") or 9000)
        self.api_port = int(self.env.get("LOCAL_API_PORT") or 3000)
        base = (self.env.get("API_BASE_PATH") or "/api/v1").rstrip("/")
        self.api = f"http://127.0.0.1:{self.api_port}{base}"
        self.watch_url = f"http://127.0.0.1:{self.watch_port}"
        self._clients = {}

    def client(self, service: str):
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(
                service,
                endpoint_url=self.env["AWS_ENDPOINT_URL"],
                region_name=self.env.get("AWS_REGION") or "us-east-1",
                aws_access_key_id=self.env.get("AWS_ACCESS_KEY_ID") or "local",
                aws_secret_access_key=self.env.get("AWS_SECRET_ACCESS_KEY") or "local",
            )
        return self._clients[service]

    @property
    def sqs(self):
        return self.client("sqs")

    @property
    def dynamodb(self):
        return self.client("dynamodb")

    def moto_answers(self) -> bool:
        return answers(f"{self.env['AWS_ENDPOINT_URL']}/moto-api/")

    # -- tables -----------------------------------------------------------------------------

    def log_item(self, log_id: str) -> dict:
        """The log record `log_id` as plain values ({} when there is none)."""
        item = self.dynamodb.get_item(TableName=self.env["LOG_TABLE"], Key={"id": {"S": log_id}},
                                      ConsistentRead=True).get("Item")
        return plain(item or {})

    def preferences(self, user: str) -> dict:
        """The user's current preferences item as plain values ({} when there is none)."""
        item = self.dynamodb.get_item(TableName=self.env["PREFERENCES_TABLE"],
                                      Key={"userId": {"S": user}, "sk": {"S": "PREFS"}},
                                      ConsistentRead=True).get("Item")
        return plain(item or {})

    def users_of_number(self, number: str) -> list[dict]:
        """The current preferences items of every user with `number` (the byPhone index)."""
        out = self.dynamodb.query(TableName=self.env["PREFERENCES_TABLE"], IndexName="byPhone",
                                  KeyConditionExpression="lookupPhone = :p",
                                  ExpressionAttributeValues={":p": {"S": number}})
        return [self.preferences(plain(item)["userId"]) for item in out.get("Items", [])]

    def messages_of(self, user: str, limit: int = 20) -> list[dict]:
        """The user's newest log records first (the byUser index)."""
        out = self.dynamodb.query(TableName=self.env["LOG_TABLE"], IndexName="byUser",
                                  KeyConditionExpression="userId = :u",
                                  ExpressionAttributeValues={":u": {"S": user}},
                                  ScanIndexForward=False, Limit=limit)
        return [self.log_item(plain(item)["id"]) for item in out.get("Items", [])]

    # -- queues -------------------------------------------------------------------------------

    def deliver(self, queue_url: str, body: str, template: dict | None = None) -> dict:
        """Puts `body` on the queue and receives it as Lambda's event source mapping would: the
        SQS event record (a real receipt handle, so the sender can hide it for a deferral).
        Other messages received on the way are made visible again at once."""
        sqs = self.sqs
        sent = sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for _ in range(20):
            got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                      AttributeNames=["All"]).get("Messages", [])
            mine = None
            for m in got:
                if m["MessageId"] == sent["MessageId"]:
                    mine = m
                else:
                    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"],
                                                  VisibilityTimeout=0)
            if mine:
                record = dict(template or {"messageAttributes": {}})
                record.update({"messageId": mine["MessageId"], "receiptHandle": mine["ReceiptHandle"],
                               "body": mine["Body"], "attributes": mine.get("Attributes", {}),
                               "md5OfBody": mine["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
                               "awsRegion": self.env.get("AWS_REGION") or "us-east-1"})
                return record
        raise StackError(f"the message sent to {queue_url} did not come back from the queue")

    def acknowledge(self, queue_url: str, record: dict) -> None:
        """Deletes a record the function did not report as a batch item failure, as Lambda does."""
        self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"])

    # -- the functions ----------------------------------------------------------------------

    def invoke(self, function: str, event: dict, timeout: float = 900) -> tuple[int, object]:
        """POSTs `event` to `cargo lambda watch`'s invoke API: (HTTP status, parsed answer).

        Says so when the answer takes more than a few seconds: the first call after a change
        compiles the function."""
        request = urllib.request.Request(
            f"{self.watch_url}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(event).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        done = threading.Event()

        def patience():
            if not done.wait(5):
                print(f"    ... waiting for {function} (the first call after a code change compiles it; "
                      "its build shows in the `make dev` terminal)", flush=True)

        threading.Thread(target=patience, daemon=True).start()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, parse_json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, parse_json(error.read())
        except OSError as error:
            raise StackError(f"nothing answers at {self.watch_url} ({error}): is `make dev` running?") from None
        finally:
            done.set()


def plain(item: dict) -> dict:
    """A DynamoDB item (attribute values) as plain Python values."""
    from boto3.dynamodb.types import TypeDeserializer

    d = TypeDeserializer()
    return {k: d.deserialize(v) for k, v in item.items()}


def parse_json(raw: bytes):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def mask(number: str | None) -> str:
    """+1415***0123, as the functions log numbers (shared/core/src/phone.rs `mask`)."""
    if not number:
        return "(no number)"
    digits = [c for c in number if c.isdigit()]
    n = len(digits)
    head, tail = (4, 4) if n >= 10 else (n // 4, n // 4)
    return "+" + "".join(digits[:head]) + "***" + "".join(digits[n - tail:])


def daytime_zone(now: datetime | None = None) -> str:
    """A zone where it is now between 10:00 and 19:00, so quiet hours (08:00-21:00 in the
    recipient's zone) defer nothing the tools send in the next hours."""
    now = now or datetime.now(ZoneInfo("UTC"))
    for zone in ["America/Los_Angeles", "America/New_York", "Pacific/Honolulu", "Europe/London",
                 "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo"]:
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 19:
            return zone
    return "UTC"


def local_time(ms: int, zone: str | None) -> str:
    """`08:00 America/Chicago (Wed 02 Dec)` for a time in ms, in `zone` (UTC when none)."""
    tz = ZoneInfo(zone) if zone else ZoneInfo("UTC")
    at = datetime.fromtimestamp(ms / 1000, tz)
    return f"{at:%H:%M} {zone or 'UTC'} ({at:%a %d %b})"


# -- the local API ----------------------------------------------------------------------------


class ApiClient:
    """The frontend's HTTP client: cookies (access token, CSRF), X-CSRFToken, snake_case JSON,
    and a client address (X-Forwarded-For, which the local API honours from loopback only)."""

    def __init__(self, stack: Stack, user, ip: str, user_agent: str):
        try:
            key = dev_token.fetch_signing_key(stack.env)
        except dev_token.TokenError as error:
            raise StackError(f"cannot sign a token: {error}") from None
        self.api = stack.api
        self.token = dev_token.access_token(key, user, minutes=30)
        self.csrf = dev_token.new_csrf_token()
        self.ip = ip
        self.user_agent = user_agent

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        request.add_header("cookie", f"access_token={self.token}; csrftoken={self.csrf}")
        request.add_header("x-csrftoken", self.csrf)
        request.add_header("x-forwarded-for", self.ip)
        request.add_header("user-agent", self.user_agent)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=900) as response:
                return response.status, parse_json(response.read())
        except urllib.error.HTTPError as error:
            return error.code, parse_json(error.read())
        except OSError as error:
            raise StackError(f"nothing answers at {self.api} ({error}): is `make dev` running?") from None


# -- servers the tools start when `make dev` does not run them ---------------------------------


def listens(port: int) -> bool:
    """Something listens on 127.0.0.1:`port` (no HTTP request: watch logs every one)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start_server(name: str, command: list[str], log_path: str, port: int, seconds: float, env: dict | None = None):
    """Starts a server (output in `log_path`) unless something listens on `port`: the process, or None."""
    if listens(port):
        return None
    log = open(log_path, "w")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, **(env or {})), start_new_session=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if listens(port):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop_server(proc)
    raise StackError(f"{name} did not start; see {os.path.relpath(log_path, ROOT)}")


def stop_server(proc) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def watch_command(stack: Stack) -> list[str]:
    """`cargo lambda watch` as `make dev` runs it (scripts/watch.sh)."""
    return [os.path.join(ROOT, "scripts", "watch.sh"), str(stack.watch_port), DEV_ENV]


def api_command(stack: Stack) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "scripts", "local_api.py"),
            "--port", str(stack.api_port), "--watch-port", str(stack.watch_port)]


class Servers:
    """`cargo lambda watch` and the local API for the length of a `with` block: those of
    `make dev` when it runs, else started here (output in .local/<tag>-watch.log and
    .local/<tag>-api.log) and stopped at the end. `watch_log` is where the functions' output
    (the console sender's [CONSOLE SMS] blocks) goes."""

    def __init__(self, stack: Stack, tag: str):
        self.stack = stack
        self.tag = tag
        self.started = []
        self.watch_log = DEV_WATCH_LOG

    def __enter__(self) -> "Servers":
        if not self.stack.moto_answers():
            raise StackError(f"moto does not answer at {self.stack.env['AWS_ENDPOINT_URL']}: "
                             "start the local stack with `make dev`")
        env = {k: v for k, v in self.stack.env.items() if k in ("ALLOWED_ORIGINS", "API_BASE_PATH")}
        try:
            own_watch = os.path.join(LOCAL, f"{self.tag}-watch.log")
            watch = start_server("cargo lambda watch", watch_command(self.stack), own_watch,
                                 self.stack.watch_port, seconds=120, env=env)
            if watch is not None:
                self.started.append(watch)
                self.watch_log = own_watch
            api = start_server("the local API", api_command(self.stack), os.path.join(LOCAL, f"{self.tag}-api.log"),
                               self.stack.api_port, seconds=20, env=env)
            if api is not None:
                self.started.append(api)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.started):
            stop_server(proc)
        self.started = []


# -- the console sender ------------------------------------------------------------------------


def log_size(path: str) -> int:
    return os.path.getsize(path) if os.path.exists(path) else 0


def console_code(log_path: str, since: int, seconds: float = 30) -> str:
    """The code of the newest verification SMS the console sender printed after byte `since`."""
    import re

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                f.seek(since)
                # English or Spanish (a user whose locale is `es`).
                codes = re.findall(r"(?:verification code is|codigo de verificacion es) (\d{6})", f.read())
            if codes:
                return codes[-1]
        time.sleep(0.1)
    where = os.path.relpath(log_path, ROOT)
    raise StackError(
        f"no verification SMS in {where}: the console sender prints it in the output of the "
        "`cargo lambda watch` that runs the functions; `make dev` writes it to .local/watch.log, "
        "a watch started some other way does not (stop it and run `make dev`)")
