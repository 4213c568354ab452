"""`make seed`: the sample user of events/ ready to receive, through the real local API.

User `u-42` (the `userId` of every events/sqs-*.json request and the user of the events/http-*
tokens) ends with: consent bound to the verified number +1 415 555 0123, the master switch and
every category on, and a time zone where it is daytime now, so quiet hours (08:00-21:00 in the
recipient's zone) defer nothing sent in the next hours. Each step is done only when needed, so
running it again changes nothing once that holds, and it repairs what the samples undo:
a STOP (consent revoked), three hard delivery failures (number marked undeliverable), a PATCH
that turned a category off or set a zone where it is night.

It calls the HTTP API as the frontend does (opt in, PATCH, start verification, check the code it
reads off the console sender), with a token signed by the local stack's key and a client
address of its own. `make dev` should run; when it does not, the functions and the local API
are started for the run and stopped after it.

    .venv/bin/python scripts/seed.py [--user u-42] [--phone +14155550123] [--zone Asia/Tokyo]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import devlib
from devlib import StackError, mask

TOGGLES = ["sms_battle_invitations", "sms_battle_results", "sms_battle_reminders",
           "sms_streak_alerts", "sms_direct_messages", "sms_achievements"]


def daytime_in(zone: str | None) -> bool:
    if not zone:
        return False
    try:
        hour = datetime.now(ZoneInfo(zone)).hour
    except (KeyError, ValueError):
        return False
    return 10 <= hour < 19


def check(status, body, what: str, expected=(200,)):
    if status in expected:
        return body
    if status == 429:
        raise StackError(f"{what}: 429 {body}. The local verification windows are full: "
                         "`make reset-limits` empties them (or wait for the window in Retry-After)")
    raise StackError(f"{what}: {status} {body}")


def seed(stack: devlib.Stack, watch_log: str, user: str, phone: str, zone: str | None) -> dict:
    ip = f"203.0.113.{random.randint(1, 254)}"
    client = devlib.ApiClient(stack, user, ip, "make-seed")
    prefs = check(*client.call("GET", "/notifications/me/sms-preferences/"), "read preferences")
    done = []

    if not prefs.get("has_consent") or not prefs.get("allow_sms_invitations"):
        body = {"action": "opt_in"}
        if prefs.get("phone_number") != phone:
            body["phone_number"] = phone
        check(*client.call("POST", "/notifications/sms-opt-in/", body), "opt in")
        done.append("opted in (a consent grant)")
        prefs = check(*client.call("GET", "/notifications/me/sms-preferences/"), "read preferences")

    patch = {}
    if not prefs.get("allow_sms_invitations"):
        patch["allow_sms_invitations"] = True
    patch.update({t: True for t in TOGGLES if not prefs.get(t)})
    wanted_zone = zone or (prefs.get("time_zone") if daytime_in(prefs.get("time_zone")) else devlib.daytime_zone())
    if prefs.get("time_zone") != wanted_zone:
        patch["time_zone"] = wanted_zone
    if patch:
        check(*client.call("PATCH", "/notifications/me/sms-preferences/", patch), "update preferences")
        done.append("set " + ", ".join(f"{k}={json.dumps(v)}" for k, v in patch.items()))

    prefs = check(*client.call("GET", "/notifications/me/sms-preferences/"), "read preferences")
    if prefs.get("phone_number") != phone or not prefs.get("phone_verified"):
        since = devlib.log_size(watch_log)
        check(*client.call("POST", "/notifications/me/phone-verification/", {"phone_number": phone}),
              "start verification", expected=(202,))
        code = devlib.console_code(watch_log, since)
        check(*client.call("POST", "/notifications/me/phone-verification/check/", {"code": code}),
              "check the code")
        done.append(f"verified {mask(phone)} with the code the console sender printed")
        prefs = check(*client.call("GET", "/notifications/me/sms-preferences/"), "read preferences")

    if not prefs.get("has_consent"):
        # A grant made before this verification binds to the number now; one more opt-in
        # covers the case where the earlier grant had lapsed (pending for over 30 days).
        check(*client.call("POST", "/notifications/sms-opt-in/", {"action": "opt_in"}), "opt in")
        done.append("opted in again for the verified number")
        prefs = check(*client.call("GET", "/notifications/me/sms-preferences/"), "read preferences")

    missing = [t for t in TOGGLES if not prefs.get(t)]
    if not (prefs.get("has_consent") and prefs.get("phone_verified") and prefs.get("allow_sms_invitations")) or missing:
        raise StackError(f"{user} is still not ready to receive: {prefs}")
    return {"done": done, "prefs": prefs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Makes the sample user ready to receive SMS on the local stack.")
    parser.add_argument("--user", default=devlib.SAMPLE_USER)
    parser.add_argument("--phone", default=devlib.SAMPLE_PHONE)
    parser.add_argument("--zone", help="IANA time zone (default: keep one where it is daytime now, else pick one)")
    args = parser.parse_args(argv)
    try:
        stack = devlib.Stack()
        with devlib.Servers(stack, "seed") as servers:
            result = seed(stack, servers.watch_log, args.user, args.phone, args.zone)
    except StackError as error:
        print(f"make seed: {error}", file=sys.stderr)
        return 1
    prefs = result["prefs"]
    zone = prefs.get("time_zone")
    now = datetime.now(ZoneInfo(zone)).strftime("%H:%M") if zone else "?"
    for line in result["done"] or ["nothing to do: already ready"]:
        print(f"    {line}")
    print(f"{args.user} is ready: consent for {mask(prefs.get('phone_number'))} (verified), master switch and "
          f"all {len(TOGGLES)} categories on, time zone {zone} ({now} there: promotional SMS go out "
          "between 08:00 and 21:00 in the user's zone).")
    print("Next: make send KIND=battle_invitation   (make send alone lists the kinds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
