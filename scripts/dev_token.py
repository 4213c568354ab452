"""A signed access token for the local API: `make token USER=42`.

The API accepts the web app's own SimpleJWT access token (DESIGN.md §5): HS256, claims
`token_type` "access", `exp`, `iat`, `jti`, `user_id`, in the `access_token` cookie or an
`Authorization: Bearer` header; a cookie-authenticated POST/PATCH must also send the `csrftoken`
cookie's value in `X-CSRFToken`. Locally the signing key is a secret in moto that the local stack
creates (`JWT_SIGNING_KEY_SECRET_ID` in .local/dev.env); this script reads it, signs a token
for the user, makes a random CSRF token, and prints them:

    .venv/bin/python scripts/dev_token.py --user 42 [--minutes 60] [--format curl|token|cookie|json|shell]

`curl` (the default) prints ready curl lines for the local API (scripts/local_api.py), `token`
the bare JWT (for `Authorization: Bearer`), `cookie` the Cookie header value, `json` all of it,
`shell` the lines `COOKIE=...` and `CSRF=...` for `eval`.
Settings come from .local/dev.env, the environment overriding it (`--env-file` to read another).
It only ever talks to a local endpoint (`AWS_ENDPOINT_URL` must be set) and never prints the key.

Named dev_token.py, not token.py: a token.py in scripts/ would shadow Python's own `token`
module for every script run from this folder (scripts/moto_server.py then fails to import).
Other scripts import `sign_jwt`, `access_token` and `new_csrf_token` from here (scripts/demo.py).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_ENV = os.path.join(ROOT, ".local", "dev.env")
SECRET_VAR = "JWT_SIGNING_KEY_SECRET_ID"


class TokenError(Exception):
    """Why no token could be made, in words for the developer."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(key: bytes, claims: dict) -> str:
    """An HS256 JWT (compact serialization) of `claims` under `key`."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def user_id_claim(user) -> int | str:
    """SimpleJWT puts the user's primary key in `user_id`: a number when it looks like one."""
    text = str(user).strip()
    return int(text) if text.isdigit() else text


def access_token(key: bytes, user, minutes: float = 60, now: float | None = None) -> str:
    """A SimpleJWT-shaped access token for `user`, valid for `minutes` from `now`."""
    issued = int(time.time() if now is None else now)
    claims = {
        "token_type": "access",
        "exp": issued + int(minutes * 60),
        "iat": issued,
        "jti": uuid.uuid4().hex,
        "user_id": user_id_claim(user),
    }
    return sign_jwt(key, claims)


def new_csrf_token() -> str:
    return secrets.token_hex(16)


def read_env_file(path: str) -> dict:
    values = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    except FileNotFoundError:
        pass
    return values


def load_settings(env_file: str = DEV_ENV, environ=None) -> dict:
    """The local stack's variables: the env file, each overridden by the environment."""
    environ = os.environ if environ is None else environ
    settings = read_env_file(env_file)
    settings.update({k: v for k, v in environ.items() if v != ""})
    return settings


def fetch_signing_key(settings: dict) -> bytes:
    """The JWT signing key from the local Secrets Manager (moto): the SecretString's UTF-8 bytes."""
    secret_id = settings.get(SECRET_VAR)
    if not secret_id:
        raise TokenError(
            f"no {SECRET_VAR} in .local/dev.env or the environment: start the local stack "
            "(`make dev` or `make stack`) first"
        )
    endpoint = settings.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise TokenError("AWS_ENDPOINT_URL is not set: tokens are only signed with the local stack's key")
    import boto3
    import botocore.config
    import botocore.exceptions

    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=settings.get("AWS_REGION") or "us-east-1",
        aws_access_key_id=settings.get("AWS_ACCESS_KEY_ID") or "local",
        aws_secret_access_key=settings.get("AWS_SECRET_ACCESS_KEY") or "local",
        config=botocore.config.Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 1}),
    )
    try:
        secret = client.get_secret_value(SecretId=secret_id)
    except botocore.exceptions.EndpointConnectionError:
        raise TokenError(f"nothing answers at {endpoint}: is the local stack running (`make stack`)?") from None
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise TokenError(
            f"cannot read secret {secret_id} at {endpoint} ({code}): re-create the local stack (`make stack`)"
        ) from None
    if "SecretString" not in secret:
        raise TokenError(f"secret {secret_id} has no SecretString")
    return secret["SecretString"].encode("utf-8")


def api_base_url(settings: dict) -> str:
    port = settings.get("LOCAL_API_PORT") or "3000"
    base = (settings.get("API_BASE_PATH") or "/api/v1").rstrip("/")
    return f"http://127.0.0.1:{port}{base}"


def render(fmt: str, token: str, csrf: str, user, expires_at: int, base_url: str) -> str:
    cookie = f"access_token={token}; csrftoken={csrf}"
    if fmt == "token":
        return token
    if fmt == "cookie":
        return cookie
    if fmt == "shell":
        # For `eval "$(make -s token FORMAT=shell)"`: $COOKIE and $CSRF for curl -b / -H.
        return f"COOKIE='{cookie}'\nCSRF='{csrf}'"
    if fmt == "json":
        return json.dumps({
            "user_id": user_id_claim(user), "access_token": token, "csrftoken": csrf,
            "cookie": cookie, "expires_at": expires_at, "api_base_url": base_url,
        }, indent=2)
    until = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires_at))
    auth = f"-b '{cookie}' -H 'X-CSRFToken: {csrf}'"
    url = f"{base_url}/notifications/sms-opt-in/"
    return "\n".join([
        f"# user {user_id_claim(user)}, access token valid until {until}; `make token USER=<id>` for another",
        f"curl -s {url} {auth}",
        f"curl -s -X POST {url} {auth} -H 'content-type: application/json' -d '{{\"action\":\"opt_in\"}}'",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Prints a signed access token for the local API.")
    parser.add_argument("--user", default="42", help="the user_id claim (a number unless it has non-digits)")
    parser.add_argument("--minutes", type=float, default=60, help="lifetime of the token")
    parser.add_argument("--format", choices=["curl", "token", "cookie", "json", "shell"], default="curl")
    parser.add_argument("--env-file", default=DEV_ENV)
    args = parser.parse_args(argv)
    if not str(args.user).strip():
        parser.error("--user must not be empty")
    settings = load_settings(args.env_file)
    try:
        key = fetch_signing_key(settings)
    except TokenError as error:
        print(f"dev_token: {error}", file=sys.stderr)
        return 1
    now = int(time.time())
    token = access_token(key, args.user, args.minutes, now)
    print(render(args.format, token, new_csrf_token(), args.user, now + int(args.minutes * 60), api_base_url(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
