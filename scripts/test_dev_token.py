"""Unit tests of scripts/dev_token.py (the JWT and CSRF pair of `make token`); no moto needed.

    .venv/bin/python -m unittest scripts/test_dev_token.py
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dev_token  # noqa: E402


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class Signing(unittest.TestCase):
    KEY = b"local-jwt-signing-key-0123456789abcdef"

    def test_hs256_token_with_simplejwt_claims(self):
        token = dev_token.access_token(self.KEY, "42", minutes=60, now=1_700_000_000)
        header, payload, signature = token.split(".")
        self.assertEqual(json.loads(b64url_decode(header)), {"alg": "HS256", "typ": "JWT"})
        claims = json.loads(b64url_decode(payload))
        self.assertEqual(claims["token_type"], "access")
        self.assertEqual(claims["user_id"], 42)
        self.assertEqual((claims["iat"], claims["exp"]), (1_700_000_000, 1_700_003_600))
        self.assertRegex(claims["jti"], r"^[0-9a-f]{32}$")
        expected = hmac.new(self.KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        self.assertEqual(b64url_decode(signature), expected)
        self.assertNotIn("=", token)

    def test_known_vector(self):
        # The HS256 example token of jwt.io (compact JSON, key "your-256-bit-secret").
        token = dev_token.sign_jwt(b"your-256-bit-secret", {"sub": "1234567890", "name": "John Doe", "iat": 1516239022})
        self.assertEqual(token, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
                                "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")

    def test_string_user_ids_stay_strings(self):
        self.assertEqual(dev_token.user_id_claim("u-42"), "u-42")
        self.assertEqual(dev_token.user_id_claim(" 7 "), 7)

    def test_csrf_token(self):
        a, b = dev_token.new_csrf_token(), dev_token.new_csrf_token()
        self.assertRegex(a, r"^[0-9a-f]{32}$")
        self.assertNotEqual(a, b)

    def test_curl_lines(self):
        settings = {"LOCAL_API_PORT": "3001", "API_BASE_PATH": "/api/v1"}
        text = dev_token.render("curl", "J.W.T", "c" * 32, "42", 1_700_003_600, dev_token.api_base_url(settings))
        lines = text.splitlines()
        self.assertEqual(lines[1], "curl -s http://127.0.0.1:3001/api/v1/notifications/sms-opt-in/ "
                                   f"-b 'access_token=J.W.T; csrftoken={'c' * 32}' -H 'X-CSRFToken: {'c' * 32}'")
        self.assertIn("-X POST", lines[2])
        self.assertEqual(json.loads(dev_token.render("json", "J.W.T", "c", "42", 1, "u"))["user_id"], 42)


class Settings(unittest.TestCase):
    def test_env_file_then_environment(self):
        with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as f:
            f.write("AWS_ENDPOINT_URL=http://127.0.0.1:5005\n# comment\nJWT_SIGNING_KEY_SECRET_ID='local/jwt'\n")
        try:
            settings = dev_token.load_settings(f.name, environ={"AWS_ENDPOINT_URL": "http://127.0.0.1:6000"})
        finally:
            os.unlink(f.name)
        self.assertEqual(settings["AWS_ENDPOINT_URL"], "http://127.0.0.1:6000")
        self.assertEqual(settings["JWT_SIGNING_KEY_SECRET_ID"], "local/jwt")

    def test_missing_secret_or_endpoint(self):
        with self.assertRaises(dev_token.TokenError):
            dev_token.fetch_signing_key({"AWS_ENDPOINT_URL": "http://127.0.0.1:5005"})
        with self.assertRaises(dev_token.TokenError):
            dev_token.fetch_signing_key({"JWT_SIGNING_KEY_SECRET_ID": "x"})


if __name__ == "__main__":
    unittest.main()
