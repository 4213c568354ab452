"""`make send KIND=battle_invitation`: one sample of events/ through the functions, with a fresh
id, and one line per record saying what became of it.

    .venv/bin/python scripts/send.py KIND [--id ID] [--user u-42]
    .venv/bin/python scripts/send.py            lists the kinds

KIND names a file of events/ without its `sqs-`/`sns-` prefix (`battle_invitation`,
`security_alert`, `expired`, `malformed`, `delivery_delivered`, `delivery_blocked`,
`inbound_stop`, `inbound_help`, ...; dashes or underscores; the whole file name works too).

* `sqs-*` (the sender): each body gets a fresh request id (`<sample id>-<6 hex>`), so a sample
  can be sent any number of times; `--id` sends it under an id of your choice instead (send it
  twice to see a `duplicate`). The body goes through the real local queue, as the event source
  mapping would deliver it (a real receipt handle, so a quiet-hours deferral really hides it), and
  records the sender acknowledges are deleted from the queue afterwards, as Lambda does. The
  outcome of each record is read back from the log table (and the dead-letter queue for an
  invalid body): `sent to +1415***0123`, `suppressed: category_off (...)`, `deferred until
  08:00 America/Chicago`, `duplicate`, `expired`, `rejected`; a sent SMS's [CONSOLE SMS] block
  is printed too.
* `sns-delivery-*` (delivery-status): the receipt is for the user's newest sent message (`--id`:
  another log id), with its provider message id and number and the current time; prints the
  record's status before and after.
* `sns-inbound-*` (inbound-sms): the reply comes from the user's number with a fresh inbound
  message id; prints what it did to consent and the reply sent back.

The functions are called through `cargo lambda watch`'s invoke API, as `cargo lambda invoke`
does; `make dev` should run (when it does not, they are started for the call and stopped after).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
import uuid
from datetime import datetime, timezone

import devlib
from devlib import StackError, mask

EVENTS = os.path.join(devlib.ROOT, "events")

# What a suppression reason means for the sample user, and what gets the next sample through.
HINTS = {
    "unknown_user": "this user has no preferences on the local stack: run `make seed` first",
    "no_phone_number": "the user has no phone number: `make seed` sets and verifies one",
    "invalid_phone_number": "the stored number does not parse: `make seed` sets a valid one",
    "phone_not_verified": "the number is not verified: `make seed` verifies it",
    "no_consent": "the user never opted in: `make seed` opts in",
    "no_consent_for_number": "consent covers another number than the verified one: `make seed` grants it for this one",
    "consent_revoked": "the number replied STOP: `make seed` (or `make send KIND=inbound_start`) grants consent again",
    "master_switch_off": "the user turned SMS off (allow_sms_invitations): `make seed` turns it on",
    "category_off": "the user turned this category off ({toggle}): `make seed` turns every category on",
    "country_not_allowed": "the number's country is not in ALLOWED_COUNTRIES",
    "number_undeliverable": "3 hard delivery failures in a row marked the number undeliverable (the failing "
                            "sns-delivery-* samples): `make seed` verifies it again",
    "daily_cap": "the user's promotional SMS for this UTC day (DAILY_PROMOTIONAL_CAP, 10) are used up: `make reset-limits`",
    "state_cap": "3 promotional SMS per 24 h for this area code's state: `make reset-limits`",
    "spend_limit": "the month's spend cap is reached: `make reset-limits`",
    "hard_spend_cap": "the month's hard spend cap is reached: `make reset-limits`",
    "carrier_opted_out": "the carrier holds an opt-out for the number",
}

TOGGLE_OF_KIND = {
    "battle_invitation": "sms_battle_invitations", "battle_result": "sms_battle_results",
    "battle_reminder": "sms_battle_reminders", "streak_alert": "sms_streak_alerts",
    "direct_message": "sms_direct_messages", "achievement_unlock": "sms_achievements",
}


def key_of(name: str) -> str:
    name = os.path.basename(name).removesuffix(".json").replace("-", "_").lower()
    for prefix in ("sqs_", "sns_"):
        name = name.removeprefix(prefix)
    return name


def samples() -> dict[str, str]:
    """KIND -> file name, for the SQS and SNS samples of events/."""
    out = {}
    for name in sorted(os.listdir(EVENTS)):
        if name.endswith(".json") and name.startswith(("sqs-", "sns-")):
            out[key_of(name)] = name
    return out


def function_of(file_name: str) -> str:
    if file_name.startswith("sqs-"):
        return "sender"
    if file_name.startswith("sns-delivery-"):
        return "delivery-status"
    return "inbound-sms"


def listing() -> str:
    groups = {"sender": [], "delivery-status": [], "inbound-sms": []}
    for kind, name in samples().items():
        groups[function_of(name)].append(kind)
    lines = ["usage: make send KIND=<kind> [ID=<request or log id>]   (events/ has the samples)"]
    for function, kinds in groups.items():
        lines.append(f"  {function}: " + ", ".join(kinds))
    lines.append("HTTP routes: curl with `make token` (see the README), or `make demo`.")
    return "\n".join(lines)


def now_ms() -> int:
    return int(time.time() * 1000)


def console_block(watch_log: str, since: int, log_id: str, seconds: float = 5) -> list[str]:
    """The [CONSOLE SMS] block the console sender printed for `log_id` after byte `since`."""
    deadline = time.monotonic() + seconds
    pattern = re.compile(r"\[CONSOLE SMS\][^\n]*log_id=" + re.escape(log_id) + r"\b.*?\[/CONSOLE SMS\]", re.S)
    while time.monotonic() < deadline:
        if os.path.exists(watch_log):
            with open(watch_log, errors="replace") as f:
                f.seek(since)
                found = pattern.search(f.read())
            if found:
                return found.group(0).splitlines()
        time.sleep(0.1)
    return []


# -- SQS samples: the sender -------------------------------------------------------------------


def queue_for(stack: devlib.Stack, arn: str) -> tuple[str, str | None]:
    """The local queue URL (and its DLQ's) for a sample's eventSourceARN, by queue name."""
    name = arn.rsplit(":", 1)[-1]
    for queue, dlq in (("TRANSACTIONAL_QUEUE_URL", "TRANSACTIONAL_DLQ_URL"),
                       ("NOTIFICATIONS_QUEUE_URL", "NOTIFICATIONS_DLQ_URL")):
        url = stack.env.get(queue, "")
        if url.rsplit("/", 1)[-1] == name:
            return url, stack.env.get(dlq)
    raise StackError(f"no local queue named {name!r} (from the sample's eventSourceARN)")


def dead_letter_reason(stack: devlib.Stack, dlq_url: str | None, message_id: str) -> str | None:
    """The RejectReason of the dead letter the sender made of SQS message `message_id`."""
    if not dlq_url:
        return None
    sqs = stack.sqs
    seen = []
    try:
        for _ in range(20):  # up to 200 dead letters, held while we look, then visible again
            got = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                      MessageAttributeNames=["All"]).get("Messages", [])
            if not got:
                return None
            seen += got
            for m in got:
                attributes = m.get("MessageAttributes", {})
                if attributes.get("SourceMessageId", {}).get("StringValue") == message_id:
                    return attributes.get("RejectReason", {}).get("StringValue", "?")
        return None
    finally:
        for m in seen:
            sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)


def describe_sqs(stack, record, request, failed: bool, started_ms: int, dlq_url, watch_log, since) -> list[str]:
    message_id = record["messageId"]
    if request is None:
        reason = dead_letter_reason(stack, dlq_url, message_id)
        if reason:
            return [f"(unparseable body): rejected, moved to {dlq_url.rsplit('/', 1)[-1]}: {reason}"]
        return [f"(unparseable body): {'retry' if failed else 'no outcome found'}; see the `make dev` terminal"]
    rid = request["id"]
    item = stack.log_item(rid)
    if not item:
        reason = dead_letter_reason(stack, dlq_url, message_id)
        if reason:
            return [f"{rid}: rejected, moved to {dlq_url.rsplit('/', 1)[-1]}: {reason}",
                    "    (invalid requests claim nothing: a corrected request may use the same id)"]
        return [f"{rid}: {'retry' if failed else 'no log record'}; see the `make dev` terminal"]

    status = item.get("status")
    reason = item.get("reason")
    updated = int(item.get("updatedAtMs") or 0)
    prefs = stack.preferences(request.get("userId", ""))
    zone = prefs.get("timeZone")
    if updated and updated < started_ms and not failed:
        at = datetime.fromtimestamp(updated / 1000, timezone.utc).strftime("%H:%M:%S UTC")
        return [f"{rid}: duplicate: this request id was settled before ({status} at {at}), so nothing was sent now.",
                "    The sender sends at most one SMS per request id, however often SQS delivers it; "
                "send without ID= for a fresh id."]
    if status in ("sent", "delivered"):
        lines = [f"{rid}: sent to {mask(item.get('phoneNumber'))} ({request.get('kind')}, "
                 f"{item.get('segments')} segment(s), message id {item.get('providerMessageId')})"]
        block = console_block(watch_log, since, rid)
        lines += [f"    {line}" for line in block]
        return lines
    if status == "suppressed":
        hint = HINTS.get(reason, "")
        hint = hint.format(toggle=TOGGLE_OF_KIND.get(request.get("kind"), "its toggle"))
        return [f"{rid}: suppressed: {reason}" + (f" ({hint})" if hint else "")]
    if status == "deferred":
        until = int(item.get("leaseUntilMs") or 0)
        where = zone or "the safe window for an unknown zone"
        return [f"{rid}: deferred until {devlib.local_time(until, zone)}: quiet hours in the user's zone "
                f"({where}); promotional SMS go out 08:00-21:00 there.",
                "    SQS would deliver it again then; locally nothing polls the queue. `make seed` sets a zone "
                "where it is daytime; then send again."]
    if status == "expired":
        return [f"{rid}: expired: its notAfter ({request.get('notAfter')}) has passed; never sent"]
    if status == "rejected":
        return [f"{rid}: rejected: {reason or item.get('errorCode')}"]
    if status == "retry" or failed:
        return [f"{rid}: retry ({item.get('errorCode') or reason or status}): reported in batchItemFailures, "
                "so SQS would deliver it again"]
    return [f"{rid}: {status}" + (f": {reason}" if reason else "")]


def send_sqs(stack, servers, sample: dict, args) -> int:
    started = now_ms()
    since = devlib.log_size(servers.watch_log)
    records, requests, dead_letters = [], [], []
    suffix = secrets.token_hex(3)
    for template in sample["Records"]:
        queue_url, dlq_url = queue_for(stack, template.get("eventSourceARN", ""))
        try:
            request = json.loads(template["body"])
            if not isinstance(request, dict):
                request = None
        except ValueError:
            request = None
        body = template["body"]
        if request is not None:
            if "id" in request:
                request["id"] = args.id or f"{request['id']}-{suffix}"
            if args.user:
                request["userId"] = args.user
            body = json.dumps(request)
        records.append(stack.deliver(queue_url, body, template))
        requests.append(request)
        dead_letters.append((queue_url, dlq_url))

    status, answer = stack.invoke("sender", {"Records": records})
    if status != 200 or not isinstance(answer, dict) or "batchItemFailures" not in answer:
        print(f"sender failed: {status} {answer}")
        return 1
    failed = {f.get("itemIdentifier") for f in answer["batchItemFailures"]}
    print(f"sender answered {json.dumps(answer)}  (batchItemFailures: records SQS must deliver again)")
    for record, request, (queue_url, dlq_url) in zip(records, requests, dead_letters):
        is_failed = record["messageId"] in failed
        for line in describe_sqs(stack, record, request, is_failed, started, dlq_url, servers.watch_log, since):
            print(f"  {line}")
        if not is_failed:  # acknowledged: Lambda's event source mapping deletes it
            stack.acknowledge(queue_url, record)
    return 0


# -- SNS samples: delivery-status and inbound-sms ----------------------------------------------


def newest_sent(stack, user: str) -> dict | None:
    for item in stack.messages_of(user):
        if item.get("providerMessageId") and not str(item.get("id", "")).startswith("reply#"):
            return item
    return None


def sns_record(template: dict, message: dict) -> dict:
    record = json.loads(json.dumps(template))
    record["Sns"]["MessageId"] = str(uuid.uuid4())
    record["Sns"]["Timestamp"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    record["Sns"]["Message"] = json.dumps(message)
    return record


def print_answer(function: str, status: int, answer) -> bool:
    if status != 200 or (isinstance(answer, dict) and "errorType" in answer):
        print(f"{function} failed ({status}): {answer}\n  Lambda would retry the event, then hand it to the "
              "on-failure queue; the `make dev` terminal has the details")
        return False
    print(f"{function} answered {json.dumps(answer)}")
    return True


def send_delivery(stack, servers, sample: dict, args, user: str) -> int:
    target = stack.log_item(args.id) if args.id else newest_sent(stack, user)
    if not target:
        which = f"log record {args.id}" if args.id else f"message of {user} that was sent"
        print(f"no {which} to report on: send one first (make send KIND=battle_invitation)")
        return 1
    records = []
    for template in sample["Records"]:
        message = json.loads(template["Sns"]["Message"])
        message.update({"messageId": target.get("providerMessageId") or message.get("messageId"),
                        "context": {"logId": target["id"]},
                        "destinationPhoneNumber": target.get("phoneNumber") or message.get("destinationPhoneNumber"),
                        "eventTimestamp": now_ms(), "messageRequestTimestamp": int(target.get("createdAtMs") or now_ms())})
        records.append(sns_record(template, message))
        event_type = message.get("eventType")
    before = target.get("status")
    status, answer = stack.invoke("delivery-status", {"Records": records})
    if not print_answer("delivery-status", status, answer):
        return 1
    after = stack.log_item(target["id"])
    change = f"{before} -> {after.get('status')}" if after.get("status") != before else f"stays {before}"
    price = after.get("priceMicros")
    extra = f"; price and carrier fee USD {int(price) / 1e6:.5f}" if price is not None else ""
    reason = f" ({after.get('reason')})" if after.get("status") == "undelivered" and after.get("reason") else ""
    print(f"  receipt {event_type} for {target['id']} (to {mask(target.get('phoneNumber'))}): {change}{reason}{extra}")
    owner = stack.preferences(target.get("userId") or user)
    if owner.get("phoneUndeliverableAt"):
        print(f"  {mask(owner.get('phoneNumber'))} is now marked undeliverable (3 hard failures in a row): "
              "its users must verify again; `make seed` does")
    return 0


def consent_line(prefs: dict) -> str:
    consent = prefs.get("consent") or {}
    number = prefs.get("phoneNumber")
    if consent.get("given") and consent.get("phoneNumber") == number:
        return "consent stands"
    if consent.get("revokedAt"):
        return f"consent revoked ({consent.get('revokedMethod')})"
    return "no consent"


def send_inbound(stack, servers, sample: dict, args, user: str) -> int:
    prefs = stack.preferences(user)
    number = prefs.get("phoneNumber") or devlib.SAMPLE_PHONE
    last = newest_sent(stack, user)
    records, inbound_ids = [], []
    for template in sample["Records"]:
        message = json.loads(template["Sns"]["Message"])
        inbound_id = str(uuid.uuid4())
        message.update({"originationNumber": number, "inboundMessageId": inbound_id,
                        "previousPublishedMessageId": (last or {}).get("providerMessageId", "")})
        records.append(sns_record(template, message))
        inbound_ids.append((inbound_id, message.get("messageBody")))
    since = devlib.log_size(servers.watch_log)
    status, answer = stack.invoke("inbound-sms", {"Records": records})
    if not print_answer("inbound-sms", status, answer):
        return 1
    users = stack.users_of_number(number)
    who = ", ".join(f"{p.get('userId')}: {consent_line(p)}" for p in users) or "no user has this number"
    for inbound_id, body in inbound_ids:
        print(f"  {json.dumps(body)} from {mask(number)}: {who}")
        reply = stack.log_item(f"reply#{inbound_id}")
        if reply:
            print(f"  reply {reply.get('status')}" + (f" ({reply.get('reason')})" if reply.get("reason") else ""))
            for line in console_block(servers.watch_log, since, f"reply#{inbound_id}", seconds=2):
                print(f"    {line}")
        else:
            print("  no reply sent (AWS answers this keyword itself: PROVIDER_ANSWERS_STOP/_HELP/_START; "
                  "or nothing needed an answer)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Sends a sample of events/ through the local functions.")
    parser.add_argument("kind", nargs="?", default="")
    parser.add_argument("--id", help="sqs: the request id to use (default: a fresh one); "
                                     "delivery: the log id the receipt is for (default: the newest sent message)")
    parser.add_argument("--user", help=f"the user (default: the sample's, {devlib.SAMPLE_USER})")
    args = parser.parse_args(argv)
    if not args.kind.strip():
        print(listing())
        return 0
    known = samples()
    name = known.get(key_of(args.kind))
    if name is None:
        print(f"no sample {args.kind!r}\n{listing()}", file=sys.stderr)
        return 2
    with open(os.path.join(EVENTS, name)) as f:
        sample = json.load(f)
    user = args.user or devlib.SAMPLE_USER
    print(f"==> events/{name} -> {function_of(name)}", flush=True)
    try:
        stack = devlib.Stack()
        with devlib.Servers(stack, "send") as servers:
            if name.startswith("sqs-"):
                return send_sqs(stack, servers, sample, args)
            if name.startswith("sns-delivery-"):
                return send_delivery(stack, servers, sample, args, user)
            return send_inbound(stack, servers, sample, args, user)
    except StackError as error:
        print(f"make send: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
