"""Unit tests of the local tools behind `make dev`, `make send` and `make test`: the build
progress wrapper (against a stand-in cargo process), the port checks of scripts/moto.sh (against
real sockets and processes), the sample catalogue of `make send`, masking. No moto needed.

    .venv/bin/python -m unittest scripts/test_dev_tools.py
"""

import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cargo_progress  # noqa: E402
import devlib  # noqa: E402
import ports  # noqa: E402
import send  # noqa: E402


class CargoProgress(unittest.TestCase):
    def test_package_names_from_package_ids(self):
        self.assertEqual(cargo_progress.package_name(
            "registry+https://github.com/rust-lang/crates.io-index#tokio@1.48.0"), "tokio")
        self.assertEqual(cargo_progress.package_name("path+file:///w/shared#sms-shared@0.1.0"), "sms-shared")
        self.assertEqual(cargo_progress.package_name("path+file:///w/functions/sender#0.1.0"), "sender")

    def test_json_messages_go_before_the_arguments_of_clippy(self):
        command = ["cargo", "clippy", "--workspace", "--quiet", "--", "-D", "warnings"]
        self.assertEqual(cargo_progress.with_json_messages(command),
                         ["cargo", "clippy", "--workspace", "--message-format=json-render-diagnostics",
                          "--", "-D", "warnings"])
        self.assertEqual(cargo_progress.unit_graph_command(command),
                         ["cargo", "check", "--workspace", "--unit-graph", "-Z", "unstable-options"])
        self.assertIsNone(cargo_progress.unit_graph_command(["cargo", "fmt"]))

    def run_fake_cargo(self, script: str, *extra):
        """Runs the wrapper around a stand-in for cargo: (exit code, stdout, stderr)."""
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "cargo")
            with open(fake, "w") as f:
                f.write(f"#!{sys.executable}\n{script}")
            os.chmod(fake, 0o755)
            out = subprocess.run([sys.executable, os.path.join(HERE, "cargo_progress.py"), *extra, "--",
                                  fake, "build", "--bin", "x"], capture_output=True, text=True, timeout=60)
        return out.returncode, out.stdout, out.stderr

    FAKE_BUILD = r'''
import json, sys
args = sys.argv[1:]
if "--unit-graph" in args:
    print(json.dumps({"units": [{}, {}, {}]}))
    sys.exit(0)
assert "--message-format=json-render-diagnostics" in args, args
def artifact(pkg, fresh, kind="lib"):
    print(json.dumps({"reason": "compiler-artifact", "package_id": f"registry+x#{pkg}@1.0.0",
                      "fresh": fresh, "target": {"kind": [kind]}}), flush=True)
artifact("serde", True)
print("   Compiling tokio v1.48.0", file=sys.stderr, flush=True)
print("warning: unused variable `x`", file=sys.stderr, flush=True)
artifact("tokio", False)
print("   Compiling sender v0.1.0 (/w/functions/sender)", file=sys.stderr, flush=True)
artifact("sender", False, "bin")
print("    Finished `dev` profile [unoptimized + debuginfo] target(s) in 1.00s", file=sys.stderr, flush=True)
sys.exit(EXIT)
'''

    def test_a_build_says_what_it_compiles_and_keeps_warnings_and_the_exit_status(self):
        code, out, err = self.run_fake_cargo(self.FAKE_BUILD.replace("EXIT", "0"), "--note", "about 4 min")
        self.assertEqual(code, 0)
        lines = out.splitlines()
        self.assertEqual(lines[0], "    about 4 min")  # the note, once something compiles
        self.assertRegex(lines[1], r"^    \[\s+1/3\]\s+\d+s  compiling tokio$")
        self.assertEqual(lines[-1].split(":")[1].strip(), "2 units compiled, 1 already up to date")
        self.assertIn("warning: unused variable `x`", err)
        self.assertNotIn("Compiling", out + err)
        self.assertNotIn("Finished", out + err)
        code, _, _ = self.run_fake_cargo(self.FAKE_BUILD.replace("EXIT", "101"))
        self.assertEqual(code, 101)

    def test_a_small_rebuild_prints_no_note(self):
        script = self.FAKE_BUILD.replace("EXIT", "0").replace(
            '{"units": [{}, {}, {}]}', '{"units": [{}, {}, {}, {}, {}, {}, {}]}').replace(
            'artifact("serde", True)', 'artifact("serde", True); artifact("a", True); artifact("b", True); '
                                       'artifact("c", True); artifact("d", True)')
        code, out, _ = self.run_fake_cargo(script, "--note", "about 4 min")
        self.assertEqual(code, 0)
        self.assertNotIn("about 4 min", out)
        self.assertRegex(out.splitlines()[0], r"^    \[\s+5/7\]")

    def test_an_up_to_date_build_prints_no_note(self):
        script = r'''
import json, sys
if "--unit-graph" in sys.argv:
    print(json.dumps({"units": [{}]})); sys.exit(0)
print(json.dumps({"reason": "compiler-artifact", "package_id": "registry+x#serde@1.0.0", "fresh": True,
                  "target": {"kind": ["lib"]}}))
'''
        code, out, _ = self.run_fake_cargo(script, "--note", "about 4 min")
        self.assertEqual((code, out.strip().split(" (")[0]), (0, "up to date"))
        code, out, _ = self.run_fake_cargo(script, "--note", "about 4 min", "--quiet")
        self.assertEqual((code, out), (0, ""))


class Ports(unittest.TestCase):
    def setUp(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]

    def tearDown(self):
        self.server.close()

    def test_a_held_port_is_not_free_and_its_holder_is_named(self):
        self.assertFalse(ports.port_is_free(self.port))
        if os.path.isdir("/proc/net"):
            self.assertIn(f"pid {os.getpid()}", ports.holder(self.port))
            self.assertEqual(ports.pids_holding(ports.listening_inodes(self.port)), [os.getpid()])
        self.server.close()
        self.assertTrue(ports.port_is_free(self.port))

    def test_waiting_for_a_process_that_exited_fails_at_once(self):
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        with redirect_stderr(io.StringIO()) as err:
            self.assertEqual(ports.wait_listening(proc.pid, self.port + 1 if self.port < 65535 else 1, 30), 1)
            self.assertEqual(ports.wait(proc.pid, f"http://127.0.0.1:{self.port}/", 30), 1)
        self.assertIn("exited", err.getvalue())

    def test_a_port_answered_by_another_process_is_not_taken_for_ours(self):
        if not os.path.isdir("/proc/net"):
            self.skipTest("needs /proc")
        # Something that lives but does not listen: the port is held by this test process.
        other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        try:
            # An HTTP answer from the test's socket: accept and answer one request in a thread.
            def answer_once():
                conn, _ = self.server.accept()
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()

            threading.Thread(target=answer_once, daemon=True).start()
            with redirect_stderr(io.StringIO()) as err:
                code = ports.wait(other.pid, f"http://127.0.0.1:{self.port}/", 30)
            self.assertEqual(code, 1)
            self.assertIn(f"pid {os.getpid()}", err.getvalue())
        finally:
            other.stdin.close()
            other.wait()


class Samples(unittest.TestCase):
    def test_every_queue_and_topic_sample_has_one_kind_and_its_function(self):
        kinds = send.samples()
        files = sorted(f for f in os.listdir(send.EVENTS) if f.startswith(("sqs-", "sns-")))
        self.assertEqual(sorted(kinds.values()), files)
        self.assertEqual(kinds["battle_invitation"], "sqs-battle-invitation.json")
        self.assertEqual(kinds["delivery_delivered"], "sns-delivery-delivered.json")
        self.assertEqual(kinds["inbound_stop"], "sns-inbound-stop.json")
        for spelled in ("battle-invitation", "sqs-battle-invitation.json", "BATTLE_INVITATION"):
            self.assertEqual(send.key_of(spelled), "battle_invitation")
        self.assertEqual(send.function_of("sqs-expired.json"), "sender")
        self.assertEqual(send.function_of("sns-delivery-spam.json"), "delivery-status")
        self.assertEqual(send.function_of("sns-inbound-help.json"), "inbound-sms")

    def test_every_suppression_reason_has_a_hint(self):
        with open(os.path.join(HERE, "..", "shared", "core", "src", "consent.rs")) as f:
            source = f.read()
        start = source.index("pub fn as_str(self)")
        reasons = set(re.findall(r'=> "([a-z_]+)"', source[start:start + 2000]))
        self.assertTrue(reasons)
        self.assertEqual(reasons - set(send.HINTS), set())

    def test_listing_names_every_kind(self):
        with redirect_stdout(io.StringIO()) as out:
            self.assertEqual(send.main([]), 0)
        for kind in send.samples():
            self.assertIn(kind, out.getvalue())


class Formats(unittest.TestCase):
    def test_numbers_are_masked_as_the_functions_mask_them(self):
        self.assertEqual(devlib.mask("+14155550123"), "+1415***0123")
        self.assertEqual(devlib.mask(None), "(no number)")

    def test_the_daytime_zone_is_in_daytime(self):
        for hour in range(24):
            now = datetime(2026, 12, 1, hour, 30, tzinfo=timezone.utc)
            zone = devlib.daytime_zone(now)
            if zone != "UTC":
                self.assertTrue(10 <= now.astimezone(ZoneInfo(zone)).hour < 19, (hour, zone))

    def test_local_time_names_the_zone(self):
        ms = int(datetime(2026, 12, 2, 14, 0, tzinfo=timezone.utc).timestamp() * 1000)
        self.assertEqual(devlib.local_time(ms, "America/Chicago"), "08:00 America/Chicago (Wed 02 Dec)")
        self.assertEqual(devlib.local_time(ms, None), "14:00 UTC (Wed 02 Dec)")


if __name__ == "__main__":
    unittest.main()
