"""`make demo`: the whole story against the local stack, one step at a time.

Opt in -> start verification -> read the code off the console sender -> check it (the opt-in
confirmation goes out: the modal's grant was pending until the number was verified) -> drop a
battle invitation on the queue and let the sender send it -> feed its delivery receipt ->
reply PARAR (a Spanish STOP: confirmed in Spanish) -> the next request is suppressed, with its
reason.

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
import sys
import time
import uuid
from datetime import datetime, timezone

import devlib
from devlib import StackError

# Area codes of the demo numbers: each is its own number prefix (the number without its last 4 digits).
AREA_CODES = ["206", "212", "303", "312", "415", "512", "617", "646", "702", "917"]

stack = None  # the devlib.Stack of the run (main)


def step(text):
    print(f"\n==> {text}", flush=True)


def show(label, value):
    print(f"    {label}: {json.dumps(value) if not isinstance(value, str) else value}", flush=True)


def invoke(function, event):
    status, answer = stack.invoke(function, event)
    if status != 200 or (isinstance(answer, dict) and "errorType" in answer):
        sys.exit(f"invoke {function} failed: {status} {answer}")
    return answer


def send_request(body):
    """The sender handles one request from the notifications queue, as Lambda would deliver it."""
    queue_url = stack.env["NOTIFICATIONS_QUEUE_URL"]
    record = stack.deliver(queue_url, json.dumps(body))
    answer = invoke("sender", {"Records": [record]})
    if not answer.get("batchItemFailures"):
        stack.acknowledge(queue_url, record)
    return answer


def sns_event(topic, message):
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": f"{topic}:demo",
        "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
                "Subject": None, "Message": json.dumps(message),
                "Timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "SignatureVersion": "1",
                "Signature": "EXAMPLE", "SigningCertUrl": "https://example.com/cert.pem",
                "UnsubscribeUrl": "https://example.com/unsubscribe", "MessageAttributes": {}},
    }]}


def console_sms(watch_log, since, log_id_prefix, seconds=10):
    """The [CONSOLE SMS] block printed after byte `since` for a log id starting with the prefix."""
    pattern = re.compile(r"\[CONSOLE SMS\][^\n]*log_id=" + re.escape(log_id_prefix) + r"[^\n]*\n.*?\[/CONSOLE SMS\]", re.S)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(watch_log):
            with open(watch_log, errors="replace") as f:
                f.seek(since)
                found = pattern.findall(f.read())
            if found:
                return found[-1].splitlines()
        time.sleep(0.1)
    return [f"(no [CONSOLE SMS] for {log_id_prefix}... in {os.path.relpath(watch_log, devlib.ROOT)})"]


def show_sms(lines):
    for line in lines:
        print(f"      {line}", flush=True)


def log_record(request_id):
    item = stack.log_item(request_id)
    return {k: (str(v) if not isinstance(v, str) else v) for k, v in item.items()
            if k in ("status", "reason", "providerMessageId", "segments", "priceMicros", "body")}


def main():
    global stack
    try:
        stack = devlib.Stack()
        with devlib.Servers(stack, "demo") as servers:
            run(servers.watch_log)
    except StackError as error:
        sys.exit(f"make demo: {error}")


def run(watch_log):
    user = random.randint(1_000_000, 9_999_999)
    phone = f"+1{random.choice(AREA_CODES)}5550{random.randint(100, 199)}"
    ip = f"{random.choice(['198.51.100', '203.0.113'])}.{random.randint(1, 254)}"
    zone = devlib.daytime_zone()
    client = devlib.ApiClient(stack, user, ip, "make-demo")
    print(f"Demo user {user}, phone {devlib.mask(phone)}, client IP {ip}, time zone {zone} (chosen so it is daytime there now).")
    print(f"HTTP calls go to {stack.api} with a signed access_token cookie and the CSRF pair.")

    step("1. Opt in from the frontend's modal (POST /notifications/sms-opt-in/)")
    status, body = client.call("POST", "/notifications/sms-opt-in/",
                               {"action": "opt_in", "phone_number": phone, "time_zone": zone})
    show(status, body)

    step("2. Start phone verification (POST /notifications/me/phone-verification/)")
    since = devlib.log_size(watch_log)
    status, body = client.call("POST", "/notifications/me/phone-verification/", {"phone_number": phone})
    show(status, body)
    if status != 202:
        sys.exit("verification did not start; see the answer above")

    step(f"3. Read the code off the console sender ([CONSOLE SMS] in {os.path.relpath(watch_log, devlib.ROOT)})")
    code = devlib.console_code(watch_log, since)
    show("code", code)

    step("4. Check it (POST /notifications/me/phone-verification/check/)")
    since = devlib.log_size(watch_log)
    status, body = client.call("POST", "/notifications/me/phone-verification/check/", {"code": code})
    show(status, body)
    status, body = client.call("GET", "/notifications/me/sms-preferences/")
    show("preferences", body)
    print("    The modal's consent waited for a verified number; it covers this one now, so the")
    print("    opt-in confirmation goes out, once for this grant (log id optin#<user>#<grant time>):")
    show_sms(console_sms(watch_log, since, f"optin#{user}#"))

    step("5. An upstream drops a battle invitation on the notifications queue; the sender sends it")
    request_id = f"battle-invite-{uuid.uuid4().hex[:6]}"
    invitation = {"v": 1, "id": request_id, "kind": "battle_invitation", "userId": str(user),
                  "params": {"inviter_name": "Ada", "battle_topic": "Haiku",
                             "invitation_link": "https://example.com/battles/81723"}}
    show("sender answered", send_request(invitation))
    record = log_record(request_id)
    show("log", record)

    step("6. End User Messaging reports delivery (SNS -> delivery-status)")
    receipt = {"eventType": "TEXT_DELIVERED", "eventVersion": "1.0", "eventTimestamp": int(time.time() * 1000),
               "isFinal": True, "originationPhoneNumber": "+18005550100", "destinationPhoneNumber": phone,
               "isoCountryCode": "US", "messageId": record.get("providerMessageId", "unknown"),
               "messageStatus": "DELIVERED", "context": {"logId": request_id},
               "totalMessageParts": 1, "totalMessagePrice": 0.00581, "totalCarrierFee": 0.0025}
    show("delivery-status answered", invoke("delivery-status", sns_event(stack.env["DELIVERY_TOPIC_ARN"], receipt)))
    show("log", log_record(request_id))

    step("7. The user replies PARAR, a Spanish STOP (SNS -> inbound-sms): honoured, and confirmed in Spanish")
    inbound_id = str(uuid.uuid4())
    inbound = {"originationNumber": phone, "destinationNumber": "+18005550100", "messageKeyword": "",
               "messageBody": "PARAR", "inboundMessageId": inbound_id,
               "previousPublishedMessageId": record.get("providerMessageId", "")}
    since = devlib.log_size(watch_log)
    show("inbound-sms answered", invoke("inbound-sms", sns_event(stack.env["INBOUND_TOPIC_ARN"], inbound)))
    print("    The confirmation, in the language of the keyword (within 5 minutes of the message, or never):")
    show_sms(console_sms(watch_log, since, f"reply#{inbound_id}"))
    status, body = client.call("GET", "/notifications/me/sms-preferences/")
    show("preferences", {k: body.get(k) for k in ("allow_sms_invitations", "has_consent", "consent_given_at")}
         if isinstance(body, dict) else body)

    step("8. The next invitation is suppressed, with its reason")
    next_id = f"battle-invite-{uuid.uuid4().hex[:6]}"
    invitation["id"] = next_id
    show("sender answered", send_request(invitation))
    show("log", log_record(next_id))
    print(f"\nDone. The [CONSOLE SMS] lines of this run are in {os.path.relpath(watch_log, devlib.ROOT)}.")


if __name__ == "__main__":
    main()
