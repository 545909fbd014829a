"""What the Python end-to-end tests share: a counted check, running xlhost, and the verdict."""
import subprocess
import sys

failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


def run_xlhost(xlhost, *args, expect_ok=True):
    """xlhost ARGS...; a failure that the test did not expect ends it with xlhost's output."""
    r = subprocess.run([xlhost, *args], capture_output=True, text=True)
    if expect_ok and r.returncode != 0:
        sys.exit(f"xlhost {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def finish(passed_message):
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print(passed_message)
