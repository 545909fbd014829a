"""xlhost's benchmark scoring and completions API against lm-evaluation-harness (the oracle).

Usage: lm_eval_oracle.py XLHOST PLUGIN_DIR WORKDIR.
A multiple-choice task in lm-eval's local-task form (a YAML with dataset_path: json over a
generated JSONL), offline, on one trained model_original run:
  (a) `xlhost eval RUN --task items.jsonl`,
  (b) lm-eval's `hf` backend on `xlhost export` of the run,
  (c) lm-eval's `local-completions` against `xlhost serve RUN`
give the same choice for every item, the same acc and acc_norm, and per-choice
log-likelihoods within 1e-4; (a) and (c) also agree on a model_memory run. Then the serve
API's own answers: logprobs equal to eval's for the same text, and bad requests answered
4xx with a JSON error while the server stays up. Last, a HellaSwag-style JSONL and a
C-Eval-style CSV read by xlhost score what lm-eval's own hellaswag and ceval task configs
score on the same files, and malformed task files are one line naming file:line, exit 2.
"""
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
import lm_eval  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from oracle_checks import check, finish, run_xlhost  # noqa: E402

xlhost, plugin_dir, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
TOLERANCE = 1e-4


def run(*args, expect_ok=True):
    return run_xlhost(xlhost, *args, expect_ok=expect_ok)


def config(name, plugin_model, steps, knowledge=False, reference=None):
    c = {
        "experiment": {"id": name},
        "model": plugin_model,
        "data": {"train_path": str(work / "syn/train.jsonl"), "val_path": str(work / "syn/val.jsonl"),
                 "tokenizer": str(work / "syn/tokenizer/tokenizer.json"),
                 "seq_len": 64, "cache_dir": str(work / "cache")},
        "train": {"batch_size": 8, "max_steps": steps, "lr": 3e-3, "log_interval": 10, "threads": 2},
        "metrics": {"enabled": False},
        "run": {"out_dir": str(work / "out")},
    }
    if knowledge:
        c["data"]["knowledge_path"] = str(work / "syn/knowledge.txt")
    if reference:
        c["generate"] = {"prompts_path": str(work / "syn/prompts.txt"), "samples": 3, "max_new_tokens": 12,
                         "temperature": 0.0, "reference_run": reference}
    path = work / f"{name}.json"
    path.write_text(json.dumps(c))
    return str(path)


# The task: facts as multiple-choice items (data synth writes them), and items whose context
# ends in spaces (lm-eval moves them into the continuation) or whose choices differ in length.
run("data", "synth", "--out", str(work / "syn"), "--entities", "40")
items = [json.loads(line) for line in (work / "syn/fact_choices.jsonl").read_text().splitlines()[:36]]
items += [
    {"context": "The capital of Quaquira is ", "choices": ["Ruba", "a very long invented answer", "X"], "gold": 0},
    {"context": "Question: what colour is the sky?\nAnswer:", "choices": ["blue", "green", "the colour red"], "gold": 0},
    {"context": "Founded in the year", "choices": ["1476.", "1563", "12"], "gold": 1},
]
task_dir = work / "tasks"
task_dir.mkdir()
items_path = task_dir / "items.jsonl"
items_path.write_text("".join(json.dumps(i) + "\n" for i in items))
(task_dir / "xlhost_mc.yaml").write_text(f"""task: xlhost_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items_path}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
""")

# Readers: a HellaSwag-style JSONL (WikiHow brackets, a ctx_b to capitalise) and a C-Eval-style
# CSV (quoted fields with commas, a newline and doubled quotes), each against lm-eval's own
# task config for that dataset pointed at the same file.
tasks_source = Path(lm_eval.__file__).parent / "tasks"
hellaswag = [
    {"activity_label": "Baking", "ctx_a": "A man puts flour in a bowl.", "ctx_b": "he",
     "endings": ["adds two eggs [title] and stirs.", "flies away.", "reads a book  slowly.", "sings [step] loudly."],
     "label": "0"},
    {"activity_label": "Home and Garden", "ctx_a": "[header] How to water a plant [title] Fill a can.",
     "ctx_b": "THEN you", "endings": ["pour it on the soil.", "drink it.", "paint it red.", "sell it."], "label": "0"},
] + [{"activity_label": "Facts", "ctx_a": item["context"], "ctx_b": "", "endings": item["choices"],
      "label": str(item["gold"])} for item in items[:10] if len(item["choices"]) == 4]
(task_dir / "hellaswag.jsonl").write_text("".join(json.dumps(d) + "\n" for d in hellaswag))
(task_dir / "hellaswag_local.yaml").write_text(f"""include: {tasks_source / "hellaswag/hellaswag.yaml"}
task: hellaswag_local
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {task_dir / "hellaswag.jsonl"}
training_split: null
""")
ceval_rows = [["id", "question", "A", "B", "C", "D", "answer", "explanation"],
              ["0", " 下列哪个是颜色? ", "红", "桌子", "河", "1476", "A", ""],
              ["1", "Which, of these, is a year?", "blue", "1476", "Ruba", "a \"river\"", "B", "line one\nline two"],
              ["2", "The capital of Quaquira is", "Pesor", "Bupu", "Quagia", "Ruba", "D", ""]]
import csv  # noqa: E402
with open(task_dir / "ceval.csv", "w", newline="") as f:
    csv.writer(f).writerows(ceval_rows)
ceval_yaml = (tasks_source / "ceval/_default_ceval_yaml").read_text()
ceval_yaml = "\n".join(l for l in ceval_yaml.splitlines() if not l.startswith(("dataset_path", "validation_split", "fewshot_split", "fewshot_config", "  sampler")))
(task_dir / "ceval_local.yaml").write_text(f"""task: ceval_local
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {task_dir / "ceval.csv"}
test_split: test
{ceval_yaml}
""")
task_manager = TaskManager(include_path=str(task_dir))

ORIGINAL = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512}
MEMORY = {**ORIGINAL, "knowledge_num": 256, "knowledge_length": 24, "knowledge_dim": 32, "num_selected": 4,
          "fusion": "cross_attention", "fusion_mask": "causal", "selection": "score_weighted", "fusion_heads": 4,
          "freeze_memory": True}
run("run", "-p", str(plugin_dir / "model_original.so"), "-c", config("original", ORIGINAL, 60))
run("run", "-p", str(plugin_dir / "model_memory.so"), "-c",
    config("memory", MEMORY, 30, knowledge=True, reference="original"))


def xlhost_scores(run_name, task=items_path):
    samples = work / f"{run_name}_{task.stem}_samples.jsonl"
    r = run("eval", str(work / "out" / run_name), "--task", str(task), "--samples", str(samples))
    print(r.stdout.strip())
    return [json.loads(line) for line in samples.read_text().splitlines()]


def lm_eval_scores(model, model_args, task="xlhost_mc"):
    out = lm_eval.simple_evaluate(model=model, model_args=model_args, tasks=[task], task_manager=task_manager,
                                  log_samples=True, batch_size=1, device="cpu", num_fewshot=0)
    samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
    metrics = out["results"][task]
    return samples, metrics["acc,none"], metrics["acc_norm,none"]


def compare(name, ours, theirs):
    samples, acc, acc_norm = theirs
    check(len(samples) == len(ours) > 0, f"{name}: {len(samples)} items scored by lm-eval, {len(ours)} by xlhost")
    worst, same_choice, same_norm = 0.0, True, True
    for mine, sample in zip(ours, samples):
        lls = [resp[0][0] for resp in sample["resps"]]
        worst = max(worst, max(abs(a - b) for a, b in zip(mine["loglikelihoods"], lls)))
        same_choice &= mine["predicted"] == max(range(len(lls)), key=lambda i: (lls[i], -i))
        same_norm &= (sample["acc_norm"] == 1.0) == (mine["predicted_norm"] == mine["gold"])
    check(worst < TOLERANCE, f"{name}: per-choice log-likelihoods within {TOLERANCE} (max |diff| {worst:.2e})")
    check(same_choice and same_norm, f"{name}: the same choice (and normalised choice) for every item")
    my_acc = sum(s["predicted"] == s["gold"] for s in ours) / len(ours)
    my_norm = sum(s["predicted_norm"] == s["gold"] for s in ours) / len(ours)
    check(abs(my_acc - acc) < 1e-9 and abs(my_norm - acc_norm) < 1e-9,
          f"{name}: acc {my_acc:.4f} / {acc:.4f}, acc_norm {my_norm:.4f} / {acc_norm:.4f}")


class Server:
    def __init__(self, run_name):
        self.process = subprocess.Popen([xlhost, "serve", str(work / "out" / run_name), "--listen", "127.0.0.1:0"],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        self.url = line.split(" at ", 1)[1].split()[0]
        self.name = run_name

    def post(self, body, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        request = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as e:
            text = e.read()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"not json": text[:200]}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def local_completions(server, tokenizer_dir):
    return lm_eval_scores("local-completions", f"model={server.name},base_url={server.url},tokenizer={tokenizer_dir},"
                                               f"tokenizer_backend=huggingface,max_length=64,max_retries=1")


# model_original: (a), (b), (c).
ours = xlhost_scores("original")
run("export", str(work / "out/original"), "--out", str(work / "hf"))
compare("hf backend on the export", ours, lm_eval_scores("hf", f"pretrained={work / 'hf'},dtype=float32"))
check(len(ours) == len(items), f"xlhost scored all {len(items)} items")
hf_args = f"pretrained={work / 'hf'},dtype=float32"
compare("hellaswag reader", xlhost_scores("original", task_dir / "hellaswag.jsonl"),
        lm_eval_scores("hf", hf_args, "hellaswag_local"))
compare("ceval reader", xlhost_scores("original", task_dir / "ceval.csv"), lm_eval_scores("hf", hf_args, "ceval_local"))
malformed = {
    "bad.jsonl": (json.dumps(items[0]) + "\n\n" + '{"context": "x", "choices": ["a", "b"], "gold": 5}\n', "bad.jsonl:3:"),
    "bad_json.jsonl": (json.dumps(items[0]) + "\n{oops\n", "bad_json.jsonl:2:"),
    "bad.csv": ("question,A,B,C,D,answer\nq,a,b,c,d,A\n\"q2\nstill q2\",a,b,c,d,E\n", "bad.csv:3:"),
    "short.csv": ("question,A,B,C,D,answer\nq,a,b,c,d\n", "short.csv:2:"),
}
for name, (text, where) in malformed.items():
    (task_dir / name).write_text(text)
    r = run("eval", str(work / "out/original"), "--task", str(task_dir / name), expect_ok=False)
    lines = r.stderr.strip().splitlines()
    check(r.returncode == 2 and len(lines) == 1 and where in lines[0], f"malformed {name}: exit {r.returncode}, {lines}")

server = Server("original")
try:
    compare("local-completions against xlhost serve", ours, local_completions(server, work / "hf"))

    # The API itself: echo logprobs are eval's numbers for the same text.
    item = items[0]
    text = item["context"] + " " + item["choices"][0]
    status, answer = server.post({"model": "original", "prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1})
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(work / "hf"))
    context_tokens = len(tokenizer(item["context"], add_special_tokens=False).input_ids)
    served = sum(answer["choices"][0]["logprobs"]["token_logprobs"][context_tokens:]) if status == 200 else None
    check(served is not None and abs(served - ours[0]["loglikelihoods"][0]) < TOLERANCE,
          f"serve's echo logprobs for a text equal eval's: {served} / {ours[0]['loglikelihoods'][0]}")
    status, answer = server.post({"prompt": [text, text], "max_tokens": 3, "temperature": 0, "logprobs": 2})
    check(status == 200 and len(answer["choices"]) == 2 and answer["choices"][0]["text"] == answer["choices"][1]["text"]
          and len(answer["choices"][0]["logprobs"]["top_logprobs"][0]) == 2 and answer["usage"]["completion_tokens"] == 6,
          "two prompts in one request: two greedy completions, 2 alternatives each")

    bad = {
        "max_tokens of the wrong type": {"prompt": "x", "max_tokens": "5"},
        "negative max_tokens": {"prompt": "x", "max_tokens": -1},
        "huge max_tokens": {"prompt": "x", "max_tokens": 10**9},
        "negative temperature": {"prompt": "x", "temperature": -0.5},
        "a prompt that is a number": {"prompt": 7},
        "token ids outside the vocabulary": {"prompt": [1, 99999]},
        "another model": {"model": "gpt-4", "prompt": "x"},
        "logprobs 6": {"prompt": "x", "logprobs": 6},
        "streaming": {"prompt": "x", "stream": True},
    }
    for what, body in bad.items():
        status, answer = server.post(body)
        check(400 <= status < 500 and "message" in answer.get("error", {}),
              f"{what}: {status} {answer.get('error', answer).get('message', answer)}")
    status, answer = server.post(None, raw=b'{"prompt": "' + b"a" * (10 << 20) + b'"}')
    check(status == 413 and "message" in answer.get("error", {}), f"a 10 MB prompt: {status} {answer}")
    status, answer = server.post(None, raw=b"{not json")
    check(status == 400 and "message" in answer.get("error", {}), f"a body that is not JSON: {status}")
    status, answer = server.post({"prompt": "The capital of", "max_tokens": 2})
    check(status == 200, "the server still answers after the bad requests")
    check(server.url.startswith("http://127.0.0.1:"), f"it listens on loopback: {server.url}")
finally:
    server.stop()

# model_memory: (a) and (c), with the corpus' BPE tokenizer on lm-eval's side.
ours = xlhost_scores("memory")
server = Server("memory")
try:
    compare("model_memory: local-completions against xlhost serve", ours, local_completions(server, work / "syn/tokenizer"))
finally:
    server.stop()

# The record and exp compare: the samples' figures (scored by the reference run) and the
# benchmark scored on both runs.
generation = json.loads((work / "out/memory/record.json").read_text())["results"]["generation"]
check(generation["samples"] == 3 and 0 < generation["distinct_1"] <= 1 and generation["reference_run"] == "original"
      and generation["reference_perplexity"] > 1, f"the memory run's record holds its samples' figures: {generation}")
table = run("exp", "compare", "original", "memory", "--out", str(work / "out")).stdout
check("samples ppl (reference run)" in table and "items.jsonl acc %" in table and "items.jsonl acc_norm %" in table,
      "exp compare shows the samples' figures and the benchmark")
listing = run("exp", "list", "--out", str(work / "out")).stdout
check(all("items.jsonl" in line and "%" in line for line in listing.splitlines()[1:]), f"exp list shows them:\n{listing}")
benchmarks = json.loads((work / "out/memory/benchmarks.json").read_text())["items.jsonl"]
check(benchmarks["contamination"]["knowledge"]["contaminated"] > 0 and benchmarks["checksum"],
      f"benchmarks.json holds the task's checksum and its contamination: {benchmarks['contamination']}")

finish("all checks passed")
