"""The sender as a Python developer would write it: boto3 and Powertools' BatchProcessor.

`make bench` runs it beside our sender, as a Lambda process under the same local Runtime API
(`python -m awslambdaric handler.lambda_handler`), against the same moto and SMS stub, to
compare CPU per message and cold start (docs/bench.md, "Python peer").

One DynamoDB or SMS request per step and per message, the steps of our sender
(docs/sender.md): read the user's preferences, claim the request id in the log, reserve the
daily cap, record the attempt, SendTextMessage with the id as Context, record the outcome.
A record that raises is reported as a batch item failure and comes back from SQS.

Not a second implementation to maintain: it covers the path the benchmark drives (opted-in
users, promotional and transactional kinds, en/es) with the rules a developer would write
first. Numbers are checked with a pattern, not a phone library, and there are no state caps,
which makes its CPU per message a lower bound.
"""

import json
import os
import re
import secrets
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from botocore.exceptions import ClientError

BRAND = os.environ.get("BRAND_NAME", "WordBattle")
FOOTER = {
    "en": os.environ.get("STOP_FOOTER", "Reply STOP to unsubscribe."),
    "es": os.environ.get("STOP_FOOTER_ES", "Responde STOP para cancelar."),
}
ORIGINATION = os.environ["ORIGINATION_IDENTITY"]
DAILY_CAP = int(os.environ.get("DAILY_PROMOTIONAL_CAP", "10"))
LEASE_MS = int(os.environ.get("SEND_CLAIM_LEASE_SECONDS", "120")) * 1000

TEMPLATES = {
    "en": {
        "battle_invitation": '{inviter_name} challenged you to a battle on "{battle_topic}". Join: {invitation_link}',
        "battle_result": 'your battle on "{battle_topic}" is over. {result_summary}. See results: {result_link}',
        "battle_reminder": '{time_remaining} left in your battle on "{battle_topic}". Play now: {battle_link}',
        "streak_alert": "your {streak_count}-day streak is waiting. Play today to keep it alive: {action_link}",
        "direct_message": '{sender_name} sent you a message: "{preview}" Reply: {link}',
        "achievement_unlock": 'you unlocked the "{achievement_name}" achievement. See it: {link}',
        "security_alert": "security alert. {summary}. If this wasn't you, secure your account: {link}",
    },
    "es": {
        "battle_invitation": '{inviter_name} te invita a una batalla sobre "{battle_topic}". Entra: {invitation_link}',
        "battle_result": 'tu batalla sobre "{battle_topic}" ha terminado. {result_summary}. Resultados: {result_link}',
        "battle_reminder": 'quedan {time_remaining} en tu batalla sobre "{battle_topic}". Juega ya: {battle_link}',
        "streak_alert": "tu racha de {streak_count} días te espera. Juega hoy para mantenerla: {action_link}",
        "direct_message": '{sender_name} te envió un mensaje: "{preview}" Responde: {link}',
        "achievement_unlock": 'desbloqueaste el logro "{achievement_name}". Míralo: {link}',
        "security_alert": "alerta de seguridad. {summary}. Si no reconoces esta actividad, protege tu cuenta: {link}",
    },
}
TRANSACTIONAL = {"security_alert"}
TOGGLES = {
    "battle_invitation": "battleInvitations",
    "battle_result": "battleResults",
    "battle_reminder": "battleReminders",
    "streak_alert": "streakAlerts",
    "direct_message": "directMessages",
    "achievement_unlock": "achievements",
}
US_CA_NUMBER = re.compile(r"^\+1[2-9]\d{2}[2-9]\d{6}$")

processor = BatchProcessor(event_type=EventType.SQS)
logger = Logger(service="python-peer")
dynamodb = boto3.resource("dynamodb")
log_table = dynamodb.Table(os.environ["LOG_TABLE"])
prefs_table = dynamodb.Table(os.environ["PREFERENCES_TABLE"])
sms = boto3.client("pinpoint-sms-voice-v2")


def now_ms():
    return int(time.time() * 1000)


def decide(request, prefs):
    """None to send, else the reason to suppress (or 'quiet_hours' to defer)."""
    if prefs is None:
        return "unknown_user"
    phone = prefs.get("phoneNumber") or ""
    if not US_CA_NUMBER.match(phone):
        return "invalid_phone_number"
    if not prefs.get("phoneVerified"):
        return "phone_not_verified"
    consent = prefs.get("consent") or {}
    if not consent.get("given") or consent.get("phoneNumber") != phone:
        return "no_consent"
    if request["kind"] in TRANSACTIONAL:
        return None
    if not prefs.get("allowSmsInvitations"):
        return "master_switch_off"
    if not (prefs.get("toggles") or {}).get(TOGGLES[request["kind"]]):
        return "category_off"
    zone = ZoneInfo(prefs.get("timeZone") or "America/New_York")
    if not 8 <= datetime.now(zone).hour < 21:
        return "quiet_hours"
    return None


def finish(request_id, token, status, **fields):
    names = {"#status": "status", "#token": "claimToken"}
    values = {":status": status, ":token": token, ":now": now_ms()}
    sets = ["#status = :status", "updatedAtMs = :now"]
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        values[f":f{i}"] = value
        sets.append(f"#f{i} = :f{i}")
    log_table.update_item(
        Key={"id": request_id},
        UpdateExpression="SET " + ", ".join(sets) + " REMOVE #token",
        ConditionExpression="#token = :token",
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def record_handler(record):
    request = json.loads(record.body)
    request_id, user_id, kind = request["id"], request["userId"], request["kind"]

    # 1. The user's preferences.
    prefs = prefs_table.get_item(Key={"userId": user_id, "sk": "PREFS"}).get("Item")

    # 2. Claim the request id: at most one SMS per id.
    token = secrets.token_hex(12)
    now = now_ms()
    try:
        log_table.update_item(
            Key={"id": request_id},
            UpdateExpression=(
                "SET #status = :pending, createdAtMs = if_not_exists(createdAtMs, :now), "
                "updatedAtMs = :now, leaseUntilMs = :lease, claimToken = :token, "
                "userId = :user, kind = :kind, attempts = if_not_exists(attempts, :zero) + :one"
            ),
            ConditionExpression=(
                "attribute_not_exists(id) OR (#status IN (:pending, :retry) AND leaseUntilMs <= :now)"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":pending": "pending",
                ":retry": "retry",
                ":now": now,
                ":lease": now + LEASE_MS,
                ":token": token,
                ":user": user_id,
                ":kind": kind,
                ":zero": 0,
                ":one": 1,
            },
        )
    except ClientError as e:
        if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
            logger.info("duplicate", extra={"request_id": request_id})
            return
        raise

    # 3. Consent, preferences, quiet hours.
    reason = decide(request, prefs)
    if reason is not None:
        finish(request_id, token, "suppressed", reason=reason)
        logger.info("suppressed", extra={"request_id": request_id, "reason": reason})
        return

    # 4. The daily cap of promotional messages.
    if kind not in TRANSACTIONAL:
        day = datetime.now(timezone.utc).date().isoformat()
        try:
            log_table.update_item(
                Key={"id": f"counter#user-day#{user_id}#{day}"},
                UpdateExpression="ADD #count :one SET expiresAt = :ttl",
                ConditionExpression="attribute_not_exists(#count) OR #count < :cap",
                ExpressionAttributeNames={"#count": "count"},
                ExpressionAttributeValues={
                    ":one": 1,
                    ":cap": DAILY_CAP,
                    ":ttl": int(time.time() + timedelta(hours=48).total_seconds()),
                },
            )
        except ClientError as e:
            if e.response["Error"]["Code"] == "ConditionalCheckFailedException":
                finish(request_id, token, "suppressed", reason="daily_cap")
                return
            raise

    locale = "es" if prefs.get("locale") == "es" else "en"
    body = f"{BRAND}: " + TEMPLATES[locale][kind].format(**request["params"])
    if kind not in TRANSACTIONAL:
        body += "\n" + FOOTER[locale]

    # 5. Record the attempt before the call, so a crash leaves it in doubt, not unsent.
    log_table.update_item(
        Key={"id": request_id},
        UpdateExpression=(
            "SET #status = :sending, sendingAtMs = :now, updatedAtMs = :now, "
            "phoneNumber = :phone, body = :body"
        ),
        ConditionExpression="claimToken = :token AND #status = :pending",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":sending": "sending",
            ":pending": "pending",
            ":now": now_ms(),
            ":phone": prefs["phoneNumber"],
            ":body": body,
            ":token": token,
        },
    )

    # 6. Send, with the request id for the delivery receipt.
    answer = sms.send_text_message(
        DestinationPhoneNumber=prefs["phoneNumber"],
        OriginationIdentity=ORIGINATION,
        MessageBody=body,
        MessageType="TRANSACTIONAL" if kind in TRANSACTIONAL else "PROMOTIONAL",
        TimeToLive=3600,
        Context={"logId": request_id},
    )

    # 7. The outcome.
    finish(request_id, token, "sent", providerMessageId=answer["MessageId"])
    logger.info("sent", extra={"request_id": request_id})


@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
