"""Shared helpers for integration tests: run cases, count, print the summary
line `N passed, N failed`, exit non-zero on failure. Standard library only."""
import os
import sys
import traceback


def tandem_bin():
    return os.environ.get("TANDEM_BIN", "build/gateway/tandem")


def source_root():
    return os.environ.get("TANDEM_SRC", os.getcwd())


class TestRun:
    def __init__(self, name):
        self.name = name
        self.cases = []

    def case(self, fn):
        self.cases.append(fn)
        return fn

    def finish(self):
        passed = failed = 0
        only = os.environ.get("TEST_ONLY")
        for fn in self.cases:
            if only and only not in fn.__name__:
                continue
            try:
                fn()
                passed += 1
                print(f"ok   {self.name}.{fn.__name__}", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {self.name}.{fn.__name__}", flush=True)
                traceback.print_exc()
        print(f"{passed} passed, {failed} failed", flush=True)
        sys.exit(1 if failed else 0)
