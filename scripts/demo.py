"""`make demo`: the whole story against the local stack, one step at a time.

Opt in -> start verification -> read the code off the console sender -> check it -> drop a
battle invitation on the queue and let the sender send it -> feed its delivery receipt ->
reply STOP -> the next request is suppressed, with its reason.

It uses the functions as `make dev` serves them (`cargo lambda watch`, started here if it is
not running, output in .local/watch.log) and the local moto with its tables and queues.
"""

import json
import os
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(ROOT, ".local")
WATCH_LOG = os.path.join(LOCAL, "watch.log")
PORT = int(os.environ.get("WATCH_PORT", "9000"))
BASE = f"http://127.0.0.1:{PORT}/lambda-url"


def load_env():
    env = {}
    with open(os.path.join(LOCAL, "dev.env")) as f:
        for line in f:
            key, _, value = line.strip().partition("=")
            if key:
                env[key] = value.strip("'\"")
    return env


ENV = load_env()
os.environ.update({k: v for k, v in ENV.items() if k.startswith("AWS_")})
aws = dict(endpoint_url=ENV["AWS_ENDPOINT_URL"], region_name=ENV["AWS_REGION"])
sqs = boto3.client("sqs", **aws)
dynamodb = boto3.client("dynamodb", **aws)


def step(text):
    print(f"\n==> {text}", flush=True)


def show(label, value):
    print(f"    {label}: {json.dumps(value) if not isinstance(value, str) else value}", flush=True)


def watch_running():
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def start_watch():
    if watch_running():
        return None
    log = open(WATCH_LOG, "w")
    proc = subprocess.Popen(
        ["cargo", "lambda", "watch", "-A", "127.0.0.1", "-P", str(PORT), "--env-file", os.path.join(LOCAL, "dev.env")],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    for _ in range(600):
        if watch_running():
            return proc
        time.sleep(0.2)
    sys.exit("cargo lambda watch did not start; see .local/watch.log")


def http(method, function, path, user, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{BASE}/{function}{path}", data=data, method=method)
    request.add_header("x-dev-user-id", user)
    request.add_header("user-agent", "make-demo")
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def invoke(function, event):
    out = subprocess.run(
        ["cargo", "lambda", "invoke", "-A", "127.0.0.1", "-P", str(PORT), function, "--data-ascii", json.dumps(event)],
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


def console_code(since):
    """The code of the newest verification SMS printed by the console sender."""
    for _ in range(300):
        with open(WATCH_LOG, errors="replace") as f:
            f.seek(since)
            codes = re.findall(r"verification code is (\d{6})", f.read())
        if codes:
            return codes[-1]
        time.sleep(0.1)
    sys.exit("no verification SMS on the console sender; see .local/watch.log")


def daytime_zone():
    """A zone where it is now between 10:00 and 19:00, so quiet hours do not defer the demo."""
    for zone in ["America/Los_Angeles", "America/New_York", "Pacific/Honolulu", "Europe/London",
                 "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo"]:
        if 10 <= datetime.now(ZoneInfo(zone)).hour < 19:
            return zone
    return "UTC"


def main():
    proc = start_watch()
    try:
        run()
    finally:
        if proc is not None:
            os.killpg(proc.pid, 15)


def run():
    user = f"demo-{uuid.uuid4().hex[:8]}"
    phone = f"+1415555{int(time.time()) % 10000:04d}"
    zone = daytime_zone()
    print(f"Demo user {user}, phone {phone}, time zone {zone} (chosen so it is daytime there now).")
    print("The first call of each function compiles it: give it a minute.")

    step("1. Opt in from the frontend's modal (POST /notifications/sms-opt-in/)")
    status, body = http("POST", "opt-in-api", "/notifications/sms-opt-in/", user,
                        {"action": "opt_in", "phoneNumber": phone, "timeZone": zone})
    show(status, body)

    step("2. Start phone verification (POST /notifications/me/phone-verification/)")
    since = os.path.getsize(WATCH_LOG) if os.path.exists(WATCH_LOG) else 0
    status, body = http("POST", "verify-api", "/notifications/me/phone-verification/", user, {"phoneNumber": phone})
    show(status, body)

    step("3. Read the code off the console sender ([CONSOLE SMS] in .local/watch.log)")
    code = console_code(since)
    show("code", code)

    step("4. Check it (POST /notifications/me/phone-verification/check/)")
    status, body = http("POST", "verify-api", "/notifications/me/phone-verification/check/", user, {"code": code})
    show(status, body)
    status, body = http("GET", "opt-in-api", "/notifications/me/sms-preferences/", user)
    show("preferences", body)

    step("5. An upstream drops a battle invitation on the notifications queue; the sender sends it")
    request_id = f"battle-invite-{uuid.uuid4().hex[:6]}"
    invitation = {"v": 1, "id": request_id, "kind": "battle_invitation", "userId": user,
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
    status, body = http("GET", "opt-in-api", "/notifications/me/sms-preferences/", user)
    show("preferences", {k: body.get(k) for k in ("allowSmsInvitations", "hasConsent", "consentGivenAt")})

    step("8. The next invitation is suppressed, with its reason")
    next_id = f"battle-invite-{uuid.uuid4().hex[:6]}"
    invitation["id"] = next_id
    show("sender answered", invoke("sender", sqs_event(ENV["NOTIFICATIONS_QUEUE_URL"], invitation)))
    show("log", log_record(next_id))
    print("\nDone. The [CONSOLE SMS] lines of this run are in .local/watch.log.")


if __name__ == "__main__":
    main()
