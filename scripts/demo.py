"""`make demo`: the whole story against the local stack, one step at a time.

Opt in -> start verification -> read the code off the console sender -> check it -> drop a
battle invitation on the queue and let the sender send it -> feed its delivery receipt ->
reply STOP -> the next request is suppressed, with its reason.

It calls the HTTP API as the frontend does, on the local API of `make dev`
(http://127.0.0.1:$LOCAL_API_PORT/api/v1/..., scripts/local_api.py), signed in with an
access token it signs with the local stack's key (scripts/dev_token.py) and the CSRF cookie
and header pair. Whatever is not running is started here and stopped at the end: `cargo lambda
watch` (output in .local/demo-watch.log) and the local API (output in .local/demo-api.log).
When `make dev` already runs them, the codes are read from its .local/watch.log.

Each run is a new user, a random demo number (+1 <area code> 555-01xx) and a random documentation
address as its client IP (X-Forwarded-For, which the local API honours from loopback only), so
the verification windows per user, number, number prefix and IP never fill up across runs.
"""

import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import boto3

import dev_token

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(ROOT, ".local")
DEV_ENV = os.path.join(LOCAL, "dev.env")
# When this script starts `cargo lambda watch` / the local API, their output goes here.
DEMO_WATCH_LOG = os.path.join(LOCAL, "demo-watch.log")
DEMO_API_LOG = os.path.join(LOCAL, "demo-api.log")
# Where `make dev`'s `cargo lambda watch` writes (scripts/dev.sh).
DEV_WATCH_LOG = os.path.join(LOCAL, "watch.log")

ENV = dev_token.load_settings(DEV_ENV)
WATCH_PORT = int(ENV.get("WATCH_PORT") or 9000)
API_PORT = int(ENV.get("LOCAL_API_PORT") or 3000)
API = f"http://127.0.0.1:{API_PORT}{(ENV.get('API_BASE_PATH') or '/api/v1').rstrip('/')}"
aws = dict(endpoint_url=ENV["AWS_ENDPOINT_URL"], region_name=ENV.get("AWS_REGION", "us-east-1"),
           aws_access_key_id=ENV.get("AWS_ACCESS_KEY_ID", "local"),
           aws_secret_access_key=ENV.get("AWS_SECRET_ACCESS_KEY", "local"))
sqs = boto3.client("sqs", **aws)
dynamodb = boto3.client("dynamodb", **aws)

# Area codes of the demo numbers: each is its own number prefix (the number without its last 4 digits).
AREA_CODES = ["206", "212", "303", "312", "415", "512", "617", "646", "702", "917"]


def step(text):
    print(f"\n==> {text}", flush=True)


def show(label, value):
    print(f"    {label}: {json.dumps(value) if not isinstance(value, str) else value}", flush=True)


def answers(url):
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def start(name, command, log_path, url, attempts):
    """Starts a server (output in `log_path`) unless something answers at `url`: the process, or None."""
    if answers(url):
        return None
    log = open(log_path, "w")
    env = dict(os.environ, **{k: v for k, v in ENV.items() if k in ("ALLOWED_ORIGINS", "API_BASE_PATH")})
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    for _ in range(attempts):
        if answers(url):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop(proc)
    sys.exit(f"{name} did not start; see {os.path.relpath(log_path, ROOT)}")


def stop(proc):
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


class Client:
    """The frontend's HTTP client: cookies (access token, CSRF), X-CSRFToken, snake_case JSON."""

    def __init__(self, user, ip):
        self.token = dev_token.access_token(dev_token.fetch_signing_key(ENV), user, minutes=30)
        self.csrf = dev_token.new_csrf_token()
        self.ip = ip

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{API}{path}", data=data, method=method)
        request.add_header("cookie", f"access_token={self.token}; csrftoken={self.csrf}")
        request.add_header("x-csrftoken", self.csrf)
        request.add_header("x-forwarded-for", self.ip)
        request.add_header("user-agent", "make-demo")
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=900) as response:
                return response.status, parse(response.read())
        except urllib.error.HTTPError as error:
            return error.code, parse(error.read())


def parse(raw):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def invoke(function, event):
    out = subprocess.run(
        ["cargo", "lambda", "invoke", "-A", "127.0.0.1", "-P", str(WATCH_PORT), function, "--data-ascii", json.dumps(event)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    if out.returncode != 0:
        sys.exit(f"invoke {function} failed:\n{out.stderr}")
    return json.loads(out.stdout or "null")


def sqs_event(queue_url, body):
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=2)["Messages"]
    m = messages[0]
    record = {
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {}, "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": ENV["AWS_REGION"],
    }
    return {"Records": [record]}


def sns_event(topic, message):
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": f"{topic}:demo",
        "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
                "Subject": None, "Message": json.dumps(message),
                "Timestamp": datetime.utcnow().isoformat() + "Z", "SignatureVersion": "1",
                "Signature": "EXAMPLE", "SigningCertUrl": "https://example.com/cert.pem",
                "UnsubscribeUrl": "https://example.com/unsubscribe", "MessageAttributes": {}},
    }]}


def log_record(request_id):
    item = dynamodb.get_item(TableName=ENV["LOG_TABLE"], Key={"id": {"S": request_id}}, ConsistentRead=True).get("Item", {})
    return {k: next(iter(v.values())) for k, v in item.items() if k in ("status", "reason", "providerMessageId", "segments", "priceMicros", "body")}


def log_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def console_code(log_path, since):
    """The code of the newest verification SMS the console sender printed after `since`."""
    for _ in range(300):
        if os.path.exists(log_path):
            with open(log_path, errors="replace") as f:
                f.seek(since)
                codes = re.findall(r"verification code is (\d{6})", f.read())
            if codes:
                return codes[-1]
        time.sleep(0.1)
    where = os.path.relpath(log_path, ROOT)
    sys.exit(f"no verification SMS in {where}: the console sender prints it in the output of the "
             "`cargo lambda watch` that runs the functions; `make dev` writes it to .local/watch.log, "
             "a watch started some other way does not (stop it and run `make demo` again)")


def daytime_zone():
    """A zone where it is now between 10:00 and 19:00, so quiet hours do not defer the demo."""
    for zone in ["America/Los_Angeles", "America/New_York", "Pacific/Honolulu", "Europe/London",
                 "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo"]:
        if 10 <= datetime.now(ZoneInfo(zone)).hour < 19:
            return zone
    return "UTC"


def main():
    started = []
    try:
        watch = start("cargo lambda watch",
                      ["cargo", "lambda", "watch", "-A", "127.0.0.1", "-P", str(WATCH_PORT), "--env-file", DEV_ENV],
                      DEMO_WATCH_LOG, f"http://127.0.0.1:{WATCH_PORT}/", attempts=600)
        started.append(watch)
        api = start("the local API",
                    [sys.executable, os.path.join(ROOT, "scripts", "local_api.py"),
                     "--port", str(API_PORT), "--watch-port", str(WATCH_PORT)],
                    DEMO_API_LOG, f"http://127.0.0.1:{API_PORT}/", attempts=100)
        started.append(api)
        run(DEMO_WATCH_LOG if watch is not None else DEV_WATCH_LOG)
    finally:
        for proc in reversed(started):
            stop(proc)


def run(watch_log):
    user = random.randint(1_000_000, 9_999_999)
    phone = f"+1{random.choice(AREA_CODES)}5550{random.randint(100, 199)}"
    ip = f"{random.choice(['198.51.100', '203.0.113'])}.{random.randint(1, 254)}"
    zone = daytime_zone()
    try:
        client = Client(user, ip)
    except dev_token.TokenError as error:
        sys.exit(f"cannot sign a token: {error}")
    print(f"Demo user {user}, phone {phone}, client IP {ip}, time zone {zone} (chosen so it is daytime there now).")
    print(f"HTTP calls go to {API} with a signed access_token cookie and the CSRF pair.")
    print("The first call of each function compiles it: give it a minute.")

    step("1. Opt in from the frontend's modal (POST /notifications/sms-opt-in/)")
    status, body = client.call("POST", "/notifications/sms-opt-in/",
                               {"action": "opt_in", "phone_number": phone, "time_zone": zone})
    show(status, body)

    step("2. Start phone verification (POST /notifications/me/phone-verification/)")
    since = log_size(watch_log)
    status, body = client.call("POST", "/notifications/me/phone-verification/", {"phone_number": phone})
    show(status, body)
    if status != 202:
        sys.exit("verification did not start; see the answer above")

    step(f"3. Read the code off the console sender ([CONSOLE SMS] in {os.path.relpath(watch_log, ROOT)})")
    code = console_code(watch_log, since)
    show("code", code)

    step("4. Check it (POST /notifications/me/phone-verification/check/)")
    status, body = client.call("POST", "/notifications/me/phone-verification/check/", {"code": code})
    show(status, body)
    status, body = client.call("GET", "/notifications/me/sms-preferences/")
    show("preferences", body)

    step("5. An upstream drops a battle invitation on the notifications queue; the sender sends it")
    request_id = f"battle-invite-{uuid.uuid4().hex[:6]}"
    invitation = {"v": 1, "id": request_id, "kind": "battle_invitation", "userId": str(user),
                  "params": {"inviter_name": "Ada", "battle_topic": "Haiku",
                             "invitation_link": "https://example.com/battles/81723"}}
    show("sender answered", invoke("sender", sqs_event(ENV["NOTIFICATIONS_QUEUE_URL"], invitation)))
    record = log_record(request_id)
    show("log", record)

    step("6. End User Messaging reports delivery (SNS -> delivery-status)")
    receipt = {"eventType": "TEXT_DELIVERED", "eventVersion": "1.0", "eventTimestamp": int(time.time() * 1000),
               "isFinal": True, "originationPhoneNumber": "+18005550100", "destinationPhoneNumber": phone,
               "isoCountryCode": "US", "messageId": record.get("providerMessageId", "unknown"),
               "messageStatus": "DELIVERED", "context": {"logId": request_id},
               "totalMessageParts": 1, "totalMessagePrice": 0.00581, "totalCarrierFee": 0.0025}
    invoke("delivery-status", sns_event(ENV["DELIVERY_TOPIC_ARN"], receipt))
    show("log", log_record(request_id))

    step("7. The user replies STOP (SNS -> inbound-sms)")
    inbound = {"originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "STOP",
               "messageBody": "STOP", "inboundMessageId": str(uuid.uuid4()),
               "previousPublishedMessageId": record.get("providerMessageId", "")}
    invoke("inbound-sms", sns_event(ENV["INBOUND_TOPIC_ARN"], inbound))
    status, body = client.call("GET", "/notifications/me/sms-preferences/")
    show("preferences", {k: body.get(k) for k in ("allow_sms_invitations", "has_consent", "consent_given_at")}
         if isinstance(body, dict) else body)

    step("8. The next invitation is suppressed, with its reason")
    next_id = f"battle-invite-{uuid.uuid4().hex[:6]}"
    invitation["id"] = next_id
    show("sender answered", invoke("sender", sqs_event(ENV["NOTIFICATIONS_QUEUE_URL"], invitation)))
    show("log", log_record(next_id))
    print(f"\nDone. The [CONSOLE SMS] lines of this run are in {os.path.relpath(watch_log, ROOT)}.")


if __name__ == "__main__":
    main()
