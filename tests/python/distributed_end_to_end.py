"""Data-parallel training on c10d (Gloo, loopback), launched as users launch it.

Usage: distributed_end_to_end.py XLHOST PLUGIN_DIR WORKDIR
1. 2 ranks (`xlhost run --nproc 2`) against one process with
   the same global batch: per-step losses within 1e-5, identical weights on both ranks; for
   model_original and model_memory.
2. One of 2 ranks killed: the survivor exits non-zero within dist.timeout_s, naming it.
   Under `torchrun --max-restarts 1` with `--resume auto`, the run completes from its last
   checkpoint with the final loss of an uninterrupted 2-rank run.
3. A 2-rank checkpoint resumed on 1 rank (same global batch through accumulation): the
   losses go on as the 2-rank run's did.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

xlhost, plugin_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
torchrun = [sys.executable, "-m", "torch.distributed.run"]
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MODELS = {
    "model_original": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259},
    "model_memory": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259, "knowledge_num": 64,
                     "knowledge_length": 12, "knowledge_dim": 16, "num_selected": 4, "fusion_heads": 4,
                     "selection": "score_weighted", "fusion_mask": "causal", "freeze_memory": True,
                     # Dropout draws other masks for 2 x 4 sequences than for 8: off, to compare exactly.
                     "fusion_attention_dropout": 0.0, "fusion_dropout": 0.0},
}


def config(name, plugin="model_original", **train):
    c = {
        "experiment": {"id": name},
        "model": MODELS[plugin],
        "data": {"train_path": str(work / "data/train.jsonl"), "val_path": str(work / "data/val.jsonl"),
                 "knowledge_path": str(work / "data/knowledge.txt"), "seq_len": 32, "cache_dir": str(work / "cache")},
        "train": {"batch_size": 4, "max_steps": 8, "lr": 3e-3, "log_interval": 1, "threads": 1, "seed": 7, **train},
        "eval": {"max_batches": 2},
        "metrics": {"enabled": False},
        # Buckets of ~50 KB: the gradients travel in many all-reduces, started while backward runs.
        "dist": {"timeout_s": 20, "bucket_mb": 0.05},
        "run": {"out_dir": str(work / "out")},
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(c))
    return str(path)


def run(*args, env=None, timeout=300):
    return subprocess.run([xlhost, *args], capture_output=True, text=True, env=env, timeout=timeout)


def losses(name):
    lines = [json.loads(l) for l in (work / "out" / name / "train.log").read_text().splitlines()]
    return {l["step"]: l["loss"] for l in lines if "loss" in l and "step" in l}


def same_losses(a, b, steps):
    diffs = [abs(a[s] - b[s]) for s in steps]
    return max(diffs), all(d < 1e-5 for d in diffs)


subprocess.run([xlhost, "data", "synth", "--out", str(work / "data"), "--entities", "20", "--train-docs", "300",
                "--val-docs", "40"], check=True, capture_output=True)

# 1. Two ranks against one process with the same global batch.
for plugin in MODELS:
    so = str(plugin_dir / f"{plugin}.so")
    single = run("run", "-p", so, "-c", config(f"{plugin}-single", plugin, batch_size=8, threads=2))
    check(single.returncode == 0, f"{plugin}: one process, batch 8" + ("" if single.returncode == 0 else single.stderr[-500:]))
    ranks = run("run", "-p", so, "-c", config(f"{plugin}-two", plugin), "--nproc", "2")
    check(ranks.returncode == 0, f"{plugin}: 2 ranks of batch 4 through --nproc 2" +
          ("" if ranks.returncode == 0 else ranks.stderr[-1500:]))
    if single.returncode == 0 and ranks.returncode == 0:
        diff, ok = same_losses(losses(f"{plugin}-single"), losses(f"{plugin}-two"), range(1, 9))
        check(ok, f"{plugin}: the 8 losses agree within 1e-5 (max |diff| {diff:.1e})")
        check("parameters identical on all 2 ranks at step 8" in ranks.stderr + ranks.stdout,
              f"{plugin}: both ranks end with identical weights")
        record = json.loads((work / "out" / f"{plugin}-two" / "record.json").read_text())
        d = record.get("distributed", {})
        check(d.get("world_size") == 2 and d.get("backend") == "gloo" and len(d.get("hosts", [])) == 2,
              f"{plugin}: the record names 2 ranks on gloo: {d}")

# 1b. A memory updated by a rule from each rank's own batch (EMA) is kept equal by copying rank 0's.
ema = run("run", "-p", str(plugin_dir / "model_memory.so"), "-c",
          config("ema", "model_memory", max_steps=12), "--set", "model.freeze_memory=false", "--set",
          "model.ema_update_freq=2", "--nproc", "2")
check(ema.returncode == 0 and "buffers differ between the ranks" in ema.stderr and
      "parameters identical on all 2 ranks at step 12" in ema.stderr,
      "model_memory with an EMA bank: warned once, rank 0's bank copied, identical at the end" +
      ("" if ema.returncode == 0 else ema.stderr[-800:]))

# 2a. A rank that dies, or hangs: the survivor gives up within the timeout and names it.
def survivor_of(name, fault, timeout_s):
    port = free_port()
    cfg = config(name, max_steps=100000)
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([xlhost, "run", "-p", str(plugin_dir / "model_original.so"), "-c", cfg,
                                       "--set", f"dist.timeout_s={timeout_s}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    log = work / "out" / name / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.2)
    procs[1].send_signal(fault)
    faulted_at = time.time()
    try:
        out, err = procs[0].communicate(timeout=timeout_s + 60)
        seconds = time.time() - faulted_at
        check(procs[0].returncode not in (0, None) and seconds < timeout_s + 10,
              f"{name}: the surviving rank exits {procs[0].returncode} {seconds:.1f} s after rank 1 "
              f"{'died' if fault == signal.SIGKILL else 'stopped'} (timeout {timeout_s} s)")
        check("rank 1 exited or hangs" in err, f"{name}: its message names rank 1: " + err.strip().splitlines()[-1][:200])
        if fault == signal.SIGSTOP:  # issue 28: before, silence until the timeout
            check(f"still waiting after {timeout_s // 2} s" in err and "rank 1 stopped beating" in err,
                  f"{name}: a waiting line names rank 1 before the timeout")
    except subprocess.TimeoutExpired:
        procs[0].kill()
        check(False, f"{name}: the surviving rank was still running {timeout_s + 60} s after the fault")
    procs[1].kill()
    procs[1].wait()


survivor_of("killed", signal.SIGKILL, 20)
survivor_of("hung", signal.SIGSTOP, 8)

# 2c. Under `--nproc 2` (xlhost starts the ranks): a killed rank ends the run with one line
# and exit 2, Ctrl-C with a checkpoint and exit 0; before (torchrun), both ended in exit 1
# and a Python traceback.
def nproc_run(name, fault):
    parent = subprocess.Popen([xlhost, "run", "-p", str(plugin_dir / "model_original.so"), "-c",
                               config(name, max_steps=100000, checkpoint_interval=1000), "--nproc", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = work / "out" / name / "train.log"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 5):
        time.sleep(0.2)
    if fault == signal.SIGINT:
        parent.send_signal(signal.SIGINT)
    else:
        for pid in subprocess.run(["pgrep", "-f", f"{name}.json"], capture_output=True, text=True).stdout.split():
            try:
                if b"RANK=1\0" in Path(f"/proc/{pid}/environ").read_bytes():
                    os.kill(int(pid), fault)
            except OSError:
                pass
    try:
        out, err = parent.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        parent.kill()
        out, err = parent.communicate()
    return parent.returncode, out + err


code, output = nproc_run("nproc-killed", signal.SIGKILL)
last = output.strip().splitlines()[-1] if output.strip() else ""
check(code == 2 and "Traceback" not in output and "rank 1 was killed by signal 9" in last,
      f"--nproc 2, rank 1 killed: exit {code}, one line: {last[:200]}")
code, output = nproc_run("nproc-stopped", signal.SIGINT)
check(code == 0 and "Traceback" not in output and
      any((work / "out/nproc-stopped/checkpoints").glob("step_*/manifest.json")),
      f"--nproc 2, Ctrl-C: exit {code}, a checkpoint saved" + ("" if code == 0 else output[-800:]))

# 2b. The same under torchrun with one restart and --resume auto: completes from the last checkpoint.
reference = run("run", "-p", str(plugin_dir / "model_original.so"), "-c",
                config("uninterrupted", max_steps=40, checkpoint_interval=10), "--nproc", "2")
check(reference.returncode == 0, "an uninterrupted 2-rank run of 40 steps")
cfg = config("restarted", max_steps=40, checkpoint_interval=10)
agent = subprocess.Popen([*torchrun, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1", "--no-python",
                          xlhost, "run", "-p", str(plugin_dir / "model_original.so"), "-c", cfg, "--resume", "auto"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
checkpoint = work / "out/restarted/checkpoints/step_00000010"
deadline = time.time() + 120
while time.time() < deadline and not (checkpoint / "manifest.json").exists():
    time.sleep(0.2)
victim = None
for _ in range(50):  # torchrun's workers: the xlhost processes whose RANK is 1
    for pid in subprocess.run(["pgrep", "-f", "restarted.json"], capture_output=True, text=True).stdout.split():
        try:
            if b"RANK=1\0" in Path(f"/proc/{pid}/environ").read_bytes():
                victim = int(pid)
        except OSError:
            pass
    if victim:
        break
    time.sleep(0.1)
check(victim is not None, "found rank 1 of the torchrun job")
if victim:
    os.kill(victim, signal.SIGKILL)
out, err = agent.communicate(timeout=300)
check(agent.returncode == 0, f"torchrun --max-restarts 1 completes the run (exit {agent.returncode})" +
      ("" if agent.returncode == 0 else err[-1500:]))
if agent.returncode == 0 and reference.returncode == 0:
    a, b = losses("uninterrupted"), losses("restarted")
    check(abs(a[40] - b[40]) < 1e-5, f"the restarted run's final loss {b[40]:.6f} is the uninterrupted one's {a[40]:.6f}")
    check("resumed from" in out + err, "the restart resumed from a checkpoint")

# 3. A 2-rank checkpoint continued on 1 rank with accumulation 2: the same global batch.
shutil.copytree(work / "out/uninterrupted", work / "out/one-rank")
shutil.rmtree(work / "out/one-rank/checkpoints/step_00000040")
(work / "out/one-rank/train.log").unlink()
one = run("run", "-p", str(plugin_dir / "model_original.so"), "-c",
          config("one-rank", max_steps=40, checkpoint_interval=10, accumulation_steps=2, threads=2),
          "--resume", str(work / "out/one-rank/checkpoints/step_00000030"))
check(one.returncode == 0, "1 rank resumes the 2-rank checkpoint of step 30" + ("" if one.returncode == 0 else one.stderr[-800:]))
if one.returncode == 0 and reference.returncode == 0:
    diff, ok = same_losses(losses("uninterrupted"), losses("one-rank"), range(31, 41))
    check(ok, f"steps 31-40 on 1 rank match the 2-rank run within 1e-5 (max |diff| {diff:.1e})")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("all distributed checks passed")
