"""xlhost's exports and imports against transformers and a reference MiniMind (the oracles).

Usage: hf_interop_oracle.py XLHOST MODEL_LOGITS PLUGIN_DIR WORKDIR.
1. Trains a tiny model_original on the synthetic corpus, exports it, loads the export with
   transformers' AutoModelForCausalLM: logits within 1e-4 of xlhost's, the same greedy
   generation; --init-from the export gives the same tensors and logits.
2. Writes a MiniMind-style fp16 state dict (MiniMind's names, its tied output.weight copy)
   with torch.save, imports it with --init-from and compares logits with the reference model.
3. Wrong shapes, missing tensors, a truncated safetensors or .pth, a config of another shape:
   one clear error each.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from minimind_reference import MiniMind
from oracle_checks import check, finish, run_xlhost

xlhost, model_logits, plugin_dir, work = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
plugin = str(plugin_dir / "model_original.so")


def run(*args, expect_ok=True):
    return run_xlhost(xlhost, *args, expect_ok=expect_ok)


def xlhost_logits(checkpoint, batch):
    out = work / "logits.safetensors"
    rows = ";".join(",".join(str(i) for i in row) for row in batch)
    subprocess.run([model_logits, str(checkpoint), rows, str(out)], check=True)
    return load_file(out)["logits"]


MODEL = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512}


def config(name, **train):
    c = {
        "experiment": {"id": name},
        "model": MODEL,
        "data": {"train_path": str(work / "syn/train.jsonl"), "val_path": str(work / "syn/val.jsonl"),
                 "tokenizer": str(work / "syn/tokenizer/tokenizer.json"),
                 "seq_len": 64, "cache_dir": str(work / "cache")},
        "train": {"batch_size": 8, "max_steps": 30, "lr": 3e-3, "log_interval": 10, "threads": 2, **train},
        "metrics": {"enabled": False},
        "run": {"out_dir": str(work / "out")},
    }
    path = work / f"{name}.json"
    path.write_text(json.dumps(c))
    return str(path)


def init_run(name, source):
    """A run that starts from `source` and changes nothing (one step at lr 0): its checkpoint is the import."""
    return run("run", "-p", plugin, "-c", config(name, max_steps=1, lr=0.0, weight_decay=0.0), "--init-from", str(source),
               expect_ok=False)


run("data", "synth", "--out", str(work / "syn"))
run("run", "-p", plugin, "-c", config("pretrain"))
checkpoint = work / "out/pretrain"
tokenizer = AutoTokenizer.from_pretrained(str(work / "syn/tokenizer"))
texts = ["The capital of Quaquira is Ruba. The favourite colour of Quaquira is red.",
         "Which river runs through the old town of Sotemo, founded in the year 1560?"]
batch = [[tokenizer.bos_token_id] + tokenizer.encode(t) for t in texts]
batch = [row[: min(map(len, batch))] for row in batch]

# 1. Export → transformers.
r = run("export", str(checkpoint), "--out", str(work / "hf"))
print(r.stdout.strip())
hf = AutoModelForCausalLM.from_pretrained(str(work / "hf"), dtype=torch.float32).eval()
check(type(hf).__name__ == "LlamaForCausalLM", f"transformers loads the export as {type(hf).__name__}")
ours = xlhost_logits(checkpoint, batch)
with torch.no_grad():
    theirs = hf(torch.tensor(batch)).logits
diff = (ours - theirs).abs().max().item()
check(diff < 1e-4, f"transformers' logits match xlhost's: max |diff| {diff:.2e} over {list(ours.shape)}")

prompt = texts[0][:24]
ids = [tokenizer.bos_token_id] + tokenizer.encode(prompt)
with torch.no_grad():
    generated = hf.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False, eos_token_id=None, pad_token_id=0)
hf_text = tokenizer.decode(generated[0, len(ids):])
r = run("generate", str(checkpoint), "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "16", "--no-chat")
line = next(l for l in r.stdout.splitlines() if "->" in l)
xl_text = line.split("->", 1)[1].rsplit(" ", 1)[0]
check(xl_text == hf_text, f"greedy generations agree: xlhost {xl_text!r}, transformers {hf_text!r}")

r = init_run("reimport", work / "hf")
check(r.returncode == 0, "--init-from the export runs" + ("" if r.returncode == 0 else ": " + r.stderr[-400:]))
if r.returncode == 0:
    before = load_file(str(next((checkpoint / "checkpoints").glob("step_*")) / "model.safetensors"))
    after = load_file(str(next((work / "out/reimport/checkpoints").glob("step_*")) / "model.safetensors"))
    same = before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    check(same, "re-imported tensors are bit-identical to the exported checkpoint's")
    again = xlhost_logits(work / "out/reimport", batch)
    check(torch.equal(again, ours), "re-imported logits are identical")
    show = run("exp", "show", "reimport", "--out", str(work / "out")).stdout
    check("pretrain step 30" in show.split("{")[0], "exp show names the parent run: " + show.split("{")[0].strip())


# 2. A MiniMind state dict (the research fork's LMConfig model) → xlhost.
torch.manual_seed(0)
minimind = MiniMind()
with torch.no_grad():
    for p in minimind.parameters():  # not the defaults: every norm and matrix must travel
        p.copy_(torch.randn_like(p) * 0.2)
pth = work / "minimind_pretrain_64.pth"
state = minimind.half().state_dict()
check("output.weight" in state and state["output.weight"].dtype == torch.float16, "the .pth is fp16 with output.weight")
torch.save(state, pth)
minimind.float().eval()
r = init_run("minimind", pth)
check(r.returncode == 0, "--init-from a MiniMind .pth runs" + ("" if r.returncode == 0 else ": " + r.stderr[-600:]))
if r.returncode == 0:
    with torch.no_grad():
        reference = minimind(torch.tensor(batch))
    diff = (xlhost_logits(work / "out/minimind", batch) - reference).abs().max().item()
    check(diff < 1e-4, f"MiniMind .pth logits match the reference model: max |diff| {diff:.2e}")


# 2b. Issue 28, defect 12: head counts that give the same tensor shapes. The trained 4/2-head
# model's weights as a .pth without a config, loaded as 8 heads / 4 KV heads: before, it
# loaded silently and computed something else; now the probe on the training data names 4/2.
weights = load_file(str(next((checkpoint / "checkpoints").glob("step_*")) / "model.safetensors"))
torch.save(weights, work / "trained_4_2.pth")
r = run("run", "-p", plugin, "-c", config("heads_8_4", max_steps=1, lr=0.0), "--set", "model.n_heads=8",
        "--set", "model.n_kv_heads=4", "--init-from", str(work / "trained_4_2.pth"), expect_ok=False)
check(r.returncode == 2 and "fit 4 query / 2 KV heads far better than the configured 8 / 4" in r.stderr,
      f"a .pth read with the wrong head layout is refused, naming 4/2 (exit {r.returncode}): {r.stderr.strip()[-400:]}")
r = init_run("heads_4_2", work / "trained_4_2.pth")
check(r.returncode == 0 and "probe cannot tell" not in r.stderr,
      "the same .pth with its own head layout loads without a warning" + ("" if r.returncode == 0 else r.stderr[-400:]))


# 3. Broken inputs: one clear error each.
def expect_error(name, source, *needles):
    r = init_run(name, source)
    message = r.stderr.strip().splitlines()
    shown = "\n      ".join(message[-6:])
    ok = r.returncode != 0 and all(n in r.stderr for n in needles) and "internal error" not in r.stderr
    check(ok, f"{name}: exit {r.returncode}, names {needles}:\n      {shown}")


bad = dict(state)
bad["layers.1.attention.wq.weight"] = torch.zeros(32, 64, dtype=torch.float16)
torch.save(bad, work / "wrong_shape.pth")
expect_error("wrong_shape", work / "wrong_shape.pth", "layers.1.attention.wq.weight has shape [32, 64]", "[64, 64]")

bad = {k: v for k, v in state.items() if k != "layers.1.ffn_norm.weight"}
torch.save(bad, work / "missing.pth")
expect_error("missing_tensor", work / "missing.pth", "missing layers.1.ffn_norm.weight")

bad = dict(state)
bad["output.weight"] = torch.zeros_like(state["output.weight"])
torch.save(bad, work / "untied.pth")
expect_error("untied_copy", work / "untied.pth", "output.weight differs from tok_embeddings.weight")

data = pth.read_bytes()
(work / "truncated.pth").write_bytes(data[: len(data) // 2])
expect_error("truncated_pth", work / "truncated.pth", "truncated.pth")

shutil.copytree(work / "hf", work / "hf_truncated")
weights = (work / "hf_truncated/model.safetensors").read_bytes()
(work / "hf_truncated/model.safetensors").write_bytes(weights[: len(weights) - 1000])
expect_error("truncated_safetensors", work / "hf_truncated", "model.safetensors")

shutil.copytree(work / "hf", work / "hf_heads")
hf_config = json.loads((work / "hf_heads/config.json").read_text())
hf_config["num_attention_heads"] = 8
(work / "hf_heads/config.json").write_text(json.dumps(hf_config))
expect_error("other_heads", work / "hf_heads", "num_attention_heads is number 8, the model's is 4")

finish("all interop checks passed")
