"""The safety net itself: what harness.py promises to catch, it catches (issue 10).

A server that dies by a signal (as an ASan build aborts on an error or a leak at exit), that exits by itself,
or whose output holds a sanitizer report must fail the test that stopped it; a suite that skips must fail under
MEDIAGATE_NO_SKIP=1; the large files are the counter pattern the streaming tests compare with.
"""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import harness


class ServerEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.fx = harness.fixtures()

    def start(self) -> harness.Server:
        server = harness.Server(self.fx, ["--access-log", "off"], name=self.id().rsplit(".", 1)[-1])
        self.addCleanup(server.stop, check=False)
        return server

    def test_a_clean_stop_passes(self):
        server = self.start()
        server.stop()  # raises on a problem
        self.assertEqual(server.proc.returncode, 0)

    def test_an_abort_is_reported(self):
        server = self.start()
        server.proc.send_signal(signal.SIGABRT)  # what abort_on_error=1 does after a sanitizer report
        server.proc.wait(timeout=10)
        with self.assertRaisesRegex(AssertionError, "exited by itself, before the test stopped it, with signal "
                                                    "SIGABRT"):
            server.stop()

    def test_a_sanitizer_line_is_reported(self):
        server = self.start()
        # As if the server had written it: the check reads the collected output, wherever it came from.
        with server._cond:
            server.lines.append(("stderr", "==4242==ERROR: LeakSanitizer: detected memory leaks"))
        with self.assertRaisesRegex(AssertionError, "sanitizer reports:\n  ==4242==ERROR: LeakSanitizer"):
            server.stop()

    def test_stop_checks_once(self):
        server = self.start()
        server.proc.kill()
        server.proc.wait(timeout=10)
        with self.assertRaisesRegex(AssertionError, "SIGKILL"):
            server.stop()
        server.stop()  # a second stop (a cleanup after the test's own) does not report it again


class SkipsFailInCi(unittest.TestCase):
    def run_suite(self, env_extra: dict) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "skipping_module.py").write_text(textwrap.dedent("""
                import unittest
                class T(unittest.TestCase):
                    def test_runs(self):
                        pass
                    @unittest.skip("nothing to test against")
                    def test_skipped(self):
                        pass
            """))
            env = {k: v for k, v in os.environ.items() if k not in ("CI", "MEDIAGATE_NO_SKIP")}
            env.update(env_extra, PYTHONPATH=tmp, MEDIAGATE_TEST_STORAGE="s3")  # inherited: must be dropped
            return subprocess.run([sys.executable, str(Path(__file__).with_name("run_suite.py")), "--bin",
                                   str(harness.binary()), "skipping_module"], env=env, capture_output=True,
                                  text=True, timeout=60)

    def test_a_skip_passes_outside_ci(self):
        r = self.run_suite({})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, "ignoring inherited .*MEDIAGATE_TEST_STORAGE")

    def test_a_skip_fails_in_ci(self):
        for env in ({"MEDIAGATE_NO_SKIP": "1"}, {"CI": "true"}):
            with self.subTest(env=env):
                r = self.run_suite(env)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("skipping_module.T.test_skipped: nothing to test against", r.stderr)


class CounterPattern(unittest.TestCase):
    def test_pattern_bytes(self):
        self.assertEqual(harness.pattern_bytes(0, 16), bytes(8) + (8).to_bytes(8, "big"))
        self.assertEqual(harness.pattern_bytes(13, 6), (8).to_bytes(8, "big")[5:] + (16).to_bytes(8, "big")[:3])
        whole = harness.pattern_bytes(0, 4096)
        for offset in (0, 1, 7, 8, 1000, 4000):
            self.assertEqual(harness.pattern_bytes(offset, 96), whole[offset:offset + 96])

    def test_check_finds_a_repeated_chunk(self):
        good = harness.PatternCheck(1000)
        good(harness.pattern_bytes(1000, 500))
        good(harness.pattern_bytes(1500, 500))
        self.assertIsNone(good.problem())
        bad = harness.PatternCheck(1000)
        bad(harness.pattern_bytes(1000, 500))
        bad(harness.pattern_bytes(1000, 500))  # the same chunk again, where 1500.. belongs
        self.assertRegex(bad.problem() or "", r"^wrong byte at file offset 15\d\d ")

    def test_the_large_files_hold_the_pattern(self):
        fx = harness.fixtures()
        for key, size in harness.LARGE.items():
            with self.subTest(key=key):
                self.assertEqual((fx.root / key).stat().st_size, size)
                with open(fx.root / key, "rb") as fh:
                    for offset in (0, size // 2 + 3, size - 100):
                        fh.seek(offset)
                        self.assertEqual(fh.read(100), harness.pattern_bytes(offset, 100))


if __name__ == "__main__":
    unittest.main()
