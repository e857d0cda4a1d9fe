"""Runs integration test modules the way CTest does: in a clean environment, and failing on a skip in CI.

    /usr/bin/python3 run_suite.py --bin BUILD/mediagate [--storage local|s3] [--catalog sqlite|postgres] test_module ...

Every inherited MEDIAGATE_* variable is dropped first, except the knobs that change where or how verbosely the
suites run but never what they test (KEPT below); MEDIAGATE_BIN and MEDIAGATE_TEST_STORAGE are then set from
the options alone. So a variable exported in a developer's shell (MEDIAGATE_TEST_STORAGE, MEDIAGATE_TEST_S3_ENV)
can neither switch a suite to another backend nor make one skip itself.

A skipped test passes silently under unittest: with CI=true (or 1) or MEDIAGATE_NO_SKIP=1 (scripts/test.sh sets
it) this runner fails when anything was skipped, so a suite that quietly stopped running shows up red.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import unittest
from pathlib import Path

KEPT = {"MEDIAGATE_NO_SKIP", "MEDIAGATE_TEST_CACHE", "MEDIAGATE_TEST_WATCHDOG", "MEDIAGATE_TEST_VERBOSE"}


def no_skip_wanted(env) -> bool:
    return env.get("CI", "").lower() in ("true", "1") or env.get("MEDIAGATE_NO_SKIP", "") == "1"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True, help="the mediagate binary to test")
    p.add_argument("--storage", choices=("local", "s3"), help="MEDIAGATE_TEST_STORAGE for harness.py")
    p.add_argument("--catalog", choices=("sqlite", "postgres"), help="MEDIAGATE_TEST_CATALOG for harness.py")
    p.add_argument("--scheme", choices=("http", "https", "h2"), help="MEDIAGATE_TEST_SCHEME for harness.py: "
                   "https gives every server a test certificate and every rawhttp connection TLS; h2 speaks HTTP/2 "
                   "over that TLS (h2client.py)")
    p.add_argument("--s3-tls", action="store_true", help="MEDIAGATE_TEST_S3_TLS=1 for harness.py: the radosgw "
                   "over https with virtual-hosted addressing")
    p.add_argument("modules", nargs="+")
    args = p.parse_args()

    dropped = sorted(k for k in os.environ if k.startswith("MEDIAGATE_") and k not in KEPT)
    for k in dropped:
        del os.environ[k]
    if dropped:
        print(f"run_suite: ignoring inherited {', '.join(dropped)}", file=sys.stderr)
    os.environ["MEDIAGATE_BIN"] = str(Path(args.bin).resolve())
    if args.storage:
        os.environ["MEDIAGATE_TEST_STORAGE"] = args.storage
    if args.catalog:
        os.environ["MEDIAGATE_TEST_CATALOG"] = args.catalog
    if args.s3_tls:
        os.environ["MEDIAGATE_TEST_S3_TLS"] = "1"
    if args.scheme:
        os.environ["MEDIAGATE_TEST_SCHEME"] = args.scheme

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    suite = unittest.TestSuite()
    for name in args.modules:
        suite.addTests(unittest.defaultTestLoader.loadTestsFromModule(importlib.import_module(name)))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.skipped and no_skip_wanted(os.environ):
        print(f"\nrun_suite: {len(result.skipped)} test(s) skipped, and skipping is a failure here "
              "(CI / MEDIAGATE_NO_SKIP=1):", file=sys.stderr)
        for test, reason in result.skipped:
            print(f"  {test.id()}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
