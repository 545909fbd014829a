"""model_memory's forward against a PyTorch reference written apart from xlhost's C++
(memory_model_reference.py), in float32, for the 1.4.8 fusion both ways: faithful
(fusion_mask=none, selection=faithful) and corrected (causal mask, score-weighted rows).

Usage: memory_parity.py XLHOST PLUGIN_DIR MODEL_LOGITS WORKDIR
Each setting trains a tiny model for a few steps (the weights and gate keys move away from
their initialisation), exports it (`xlhost export`: xlhost's tensor names and the bank) and
compares the logits xlhost computes from the checkpoint with the reference's for random
tokens: max |difference| below 1e-4. A control: the reference without its memory reads
must differ from xlhost by far more, or the comparison would not see the memory at all.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from memory_model_reference import MemoryModel  # noqa: E402

xlhost, plugin_dir, model_logits, work = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
subprocess.run([xlhost, "data", "synth", "--out", str(work / "data"), "--entities", "20", "--train-docs", "100",
                "--val-docs", "10"], check=True, capture_output=True)
failures = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


torch.manual_seed(0)
tokens = torch.randint(0, 259, (3, 40))
ids = ";".join(",".join(str(int(t)) for t in row) for row in tokens)
for name, mask, selection in (("faithful", "none", "faithful"), ("corrected", "causal", "score_weighted")):
    config = work / f"{name}.json"
    config.write_text(json.dumps({
        "experiment": {"id": name},
        "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259, "knowledge_num": 64,
                  "knowledge_length": 12, "knowledge_dim": 16, "num_selected": 4, "fusion_heads": 4,
                  "fusion_mask": mask, "selection": selection},
        "data": {"train_path": str(work / "data/train.jsonl"), "val_path": "", "seq_len": 32,
                 "knowledge_path": str(work / "data/knowledge.txt"), "cache_dir": str(work / "cache")},
        "train": {"batch_size": 4, "max_steps": 8, "log_interval": 4, "lr": 3e-3},
        "generate": {"samples": 0}, "metrics": {"enabled": False}, "run": {"out_dir": str(work / "out")}}))
    subprocess.run([xlhost, "run", "-p", str(plugin_dir / "model_memory.so"), "-c", str(config)], check=True,
                   capture_output=True)
    subprocess.run([xlhost, "export", str(work / "out" / name), "--out", str(work / f"export-{name}")], check=True,
                   capture_output=True)
    subprocess.run([model_logits, str(work / "out" / name), ids, str(work / f"{name}.safetensors")], check=True)
    ours = load_file(str(work / f"{name}.safetensors"))["logits"]
    reference = MemoryModel.from_export(work / f"export-{name}")
    theirs = reference.logits(tokens)
    difference = (ours - theirs).abs().max().item()
    check(ours.shape == theirs.shape and difference < 1e-4,
          f"{name} (fusion_mask={mask}, selection={selection}): max |logit difference| {difference:.2e} < 1e-4")
    for layer in reference.layers:  # the control: no memory reads
        layer.fusion.forward = lambda q, memories, causal: torch.zeros_like(q)
    control = (ours - reference.logits(tokens)).abs().max().item()
    check(control > 1e-2, f"... and {control:.2e} without the memory reads: the comparison sees them")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("model_memory's forward matches the PyTorch reference")
