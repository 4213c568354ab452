#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from events/*.json.

Run from the repository root when the sample events change: python3 fuzz/make_corpus.py
Seeds are small, named after the event they came from, and committed; libFuzzer's own
finds go to fuzz/target/corpus (ignored), never here.
"""
import json
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
CORPUS = ROOT / "fuzz" / "corpus"

# Kinds in the order of MessageKind::ALL; the template target's first byte picks one.
KINDS = [
    "battle_invitation", "battle_result", "battle_reminder", "streak_alert",
    "direct_message", "achievement_unlock", "security_alert", "phone_verification",
]

seeds = {t: {} for t in [
    "phone", "send_request", "template_render", "segments", "keywords",
    "http_body", "delivery_event", "inbound_event",
]}


def add(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    if data and data not in seeds[target].values():
        seeds[target][name] = data


for path in sorted(EVENTS.glob("*.json")):
    event = json.loads(path.read_text())
    stem = path.stem
    if stem.startswith("sqs-"):
        for i, record in enumerate(event["Records"]):
            body = record["body"]
            add("send_request", f"{stem}-{i}", body)
            try:
                request = json.loads(body)
            except ValueError:
                continue
            params = request.get("params") if isinstance(request, dict) else None
            if isinstance(params, dict) and request.get("kind") in KINDS:
                selector = KINDS.index(request["kind"]) + 16 * 3  # at most 3 segments
                add("template_render", stem, bytes([selector]) + json.dumps(params).encode())
                for value in params.values():
                    if isinstance(value, str):
                        add("segments", f"{stem}-{value[:12]}", value)
    elif stem.startswith("sns-"):
        message = event["Records"][0]["Sns"]["Message"]
        inner = json.loads(message)
        if stem.startswith("sns-delivery-"):
            add("delivery_event", stem, message)
            add("phone", f"{stem}-destination", inner.get("destinationPhoneNumber", ""))
        else:
            add("inbound_event", stem, message)
            add("phone", f"{stem}-origination", inner.get("originationNumber", ""))
            body = inner.get("messageBody") or ""
            keyword = inner.get("messageKeyword")
            add("keywords", stem, body + ("\0" + keyword if keyword else ""))
            add("segments", stem, body)
    elif stem.startswith("http-") and event.get("body"):
        add("http_body", stem, event["body"])
        body = json.loads(event["body"])
        if isinstance(body, dict) and body.get("phone_number"):
            add("phone", f"{stem}-phone_number", body["phone_number"])

# A few hand-written seeds for what the events do not show.
add("phone", "formatted-us", "(415) 555-0123")
add("phone", "uk", "+44 20 7946 0958")
add("phone", "extension", "+1 415 555 0123 ext. 5")
add("segments", "typographic", "It’s “done” — really… 50 € ¡olé!")
add("segments", "ucs2", "日本 😀 á")
add("segments", "regression-70-ucs2-units-one-part", "日" * 70)  # a wrong bound, once
add("keywords", "phrase", "please don't text me anymore")
add("keywords", "spanish", "ALTO\0STOP")
add("template_render", "plain-text", bytes([4 + 16 * 3]) + "Ada “the great”\n— hi".encode())
add("http_body", "patch-null", '{"phone_number": null, "time_zone": null, "sms_achievements": true}')
add("http_body", "read-only", '{"has_consent": true}')
add("http_body", "trailing-slash-path", "/api/v1/notifications/me/sms-preferences/")

for target, files in seeds.items():
    directory = CORPUS / target
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name, data in files.items():
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        (directory / safe).write_bytes(data)
    print(f"{target}: {len(files)} seeds")
