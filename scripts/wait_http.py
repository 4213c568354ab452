"""Waits until a URL answers (any HTTP status), for at most TIMEOUT seconds: wait_http.py URL [TIMEOUT]."""
import sys
import time
import urllib.error
import urllib.request

url = sys.argv[1]
deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 15)
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
print(f"{url} did not answer in time", file=sys.stderr)
sys.exit(1)
