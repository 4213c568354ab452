"""`make reset-limits`: empties the local stack's rate-limit windows and send counters.

A busy afternoon of local testing fills what protects production: the verification windows
(5 codes per user and 20 per client address per hour, 10 per number per day, 10 per number
prefix and 500 per country per hour, DESIGN §5) answer 429, and the send counters (10
promotional SMS per user per UTC day, 3 per 24 h in stricter states, the month's spend) make the
sender suppress (`daily_cap`, `state_cap`, `spend_limit`). This deletes those counter items from
the local tables (verification: `rate#...`; log: `counter#...`); users, consent, codes and the
message log stay. `make stop` (then `make dev`) also resets them, with everything else.

It refuses any endpoint that is not local: it reads .local/dev.env like the other tools.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import devlib


def delete_prefixed(stack: devlib.Stack, table: str, key: str, prefix: str) -> int:
    client = stack.dynamodb
    deleted = 0
    kwargs = {"TableName": table, "ProjectionExpression": "#k", "ExpressionAttributeNames": {"#k": key},
              "FilterExpression": "begins_with(#k, :p)", "ExpressionAttributeValues": {":p": {"S": prefix}}}
    while True:
        page = client.scan(**kwargs)
        for item in page.get("Items", []):
            client.delete_item(TableName=table, Key={key: item[key]})
            deleted += 1
        if "LastEvaluatedKey" not in page:
            return deleted
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main() -> int:
    try:
        stack = devlib.Stack()
    except devlib.StackError as error:
        print(f"make reset-limits: {error}", file=sys.stderr)
        return 1
    host = urlsplit(stack.env["AWS_ENDPOINT_URL"]).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"make reset-limits: {stack.env['AWS_ENDPOINT_URL']} is not a local endpoint; nothing done", file=sys.stderr)
        return 1
    if not stack.moto_answers():
        print("make reset-limits: moto does not answer: nothing to reset (make dev starts it afresh)", file=sys.stderr)
        return 1
    windows = delete_prefixed(stack, stack.env["VERIFICATION_TABLE"], "pk", "rate#")
    counters = delete_prefixed(stack, stack.env["LOG_TABLE"], "id", "counter#")
    print(f"deleted {windows} verification window(s) and {counters} send counter(s) from the local tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
