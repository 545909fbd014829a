"""The README's examples, run top to bottom in a fresh project folder, with shrunk step counts.

Usage: readme_examples.py XLHOST_BUILD_DIR PROJECT_DIR WORKDIR
Every `build/bin/xlhost ...` command of README.md's code blocks runs in order, as written,
with `--set` overrides that shrink its training (a few steps, small evaluations) and servers
listening on a free port for a few seconds. Skipped: commands that need files from outside
(MiniMind's `$MINIMIND`), and the torchrun and Slurm lines (8 GPUs, a cluster). Afterwards
every run id has exactly one folder (nothing archived, no run resumed into another's), and
every train.log has strictly increasing steps (no zig-zag from two runs in one folder).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

build, project, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve()
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
for folder in ("configs", "experiments"):
    shutil.copytree(project / folder, work / folder)
(work / "build").symlink_to(build)
(work / ".gitignore").write_text("build\nout/\ndata/\ncache/\n")
git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.org"]
subprocess.run(git + ["init", "-q"], cwd=work, check=True)
subprocess.run(git + ["add", "-A"], cwd=work, check=True)
subprocess.run(git + ["commit", "-qm", "fresh clone"], cwd=work, check=True)

# Commands of the README's indented code blocks, continuation lines joined.
commands, pending = [], ""
for line in (project / "README.md").read_text().splitlines():
    if not line.startswith("    "):
        pending = ""
        continue
    text = pending + line.strip()
    pending = text[:-1] + " " if text.endswith("\\") else ""
    if not pending and text.startswith("build/bin/xlhost "):
        commands.append(text)
skipped = [c for c in commands if "$MINIMIND" in c]
commands = [c for c in commands if c not in skipped]
print(f"{len(commands)} README commands; skipped {len(skipped)} that need MiniMind's files", flush=True)
if len(commands) < 25:
    sys.exit(f"only {len(commands)} commands found in README.md: did its code blocks change form?")

SHRINK = {"train.max_steps": "6", "train.log_interval": "2", "train.checkpoint_interval": "3", "eval.interval": "3",
          "eval.max_batches": "2", "eval.max_facts": "20", "train.export_interval": "6"}
env = dict(os.environ, OMP_NUM_THREADS="1")
failures, ids = [], []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


for command in commands:
    words = shlex.split(command, comments=True)
    given = dict(words[i + 1].split("=", 1) for i, w in enumerate(words[:-1]) if w in ("--set", "-s"))
    if words[1] == "run":
        for key, value in SHRINK.items():
            if key not in given:  # the README's own values (its 26M example's 2 steps) stay
                words += ["--set", f"{key}={value}"]
    serving = words[1] == "serve" or words[1:3] == ["exp", "serve"]
    if serving:  # a free port, answering for a few seconds
        if "--listen" in words:
            del words[words.index("--listen"):words.index("--listen") + 2]
        words += ["--listen", "127.0.0.1:0"]
    started = time.time()
    process = subprocess.Popen(words, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=8 if serving else 900)
        code = process.returncode
    except subprocess.TimeoutExpired:
        process.terminate()
        output, _ = process.communicate()
        code = "serving" if serving else "timeout"
    ok = code == "serving" and "http://127.0.0.1:" in output if serving else code == 0
    check(ok, f"{command}  ({time.time() - started:.0f} s)")
    if not ok:
        print(output[-3000:])
    if words[1] == "run":
        config = words[words.index("-c" if "-c" in words else "--config") + 1]
        text = re.sub(r"^\s*//.*$", "", (work / config).read_text(), flags=re.M)
        ids.append(given.get("experiment.id") or json.loads(text)["experiment"]["id"])

# One folder per run id, none archived: no example reused another's id.
check(len(ids) == len(set(ids)), f"every run of the README has its own experiment.id: {ids}")
folders = sorted(p.name for p in (work / "out").iterdir() if (p / "record.json").exists())
check(set(ids) <= set(folders), f"a folder for each run id: {sorted(set(ids) - set(folders))} missing")
check(not (work / "out/.archive").exists(), "no run was archived to make room for another")
for log in sorted((work / "out").rglob("train.log")):
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines() if '"loss"' in line]
    check(len(steps) > 0 and all(a < b for a, b in zip(steps, steps[1:])),
          f"{log.relative_to(work)}: steps strictly increasing {steps[:12]}")
status = subprocess.run(["git", "status", "--porcelain"], cwd=work, capture_output=True, text=True).stdout
check(status.strip() in ("", "?? experiments/1.4.9/"), f"only exp new's experiment is new in the tree: {status!r}")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("the README's examples ran top to bottom")
