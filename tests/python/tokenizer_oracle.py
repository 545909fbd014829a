"""xlhost's tokenizers against Hugging Face `tokenizers` and `transformers` (the oracles).

Usage: tokenizer_oracle.py XLHOST WORKDIR. Writes a multilingual corpus, trains tokenizers
with both, and requires identical ids on every line in both directions, round-trip
decoding, identical output for 1 and 2 threads, and that transformers loads xlhost's files.
"""
import json
import random
import subprocess
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers, Regex

xlhost, work = sys.argv[1], Path(sys.argv[2])
work.mkdir(parents=True, exist_ok=True)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

pieces = [
    "The quick brown fox jumps over the lazy dog.", "It's what they'll say: we've done it, I'm sure you'd agree.",
    "机器学习是人工智能的一个分支。", "今天天气很好，我们去公园散步吧！", "知识库记忆模型的实验结果",
    "Ça va très bien, merci. Où est la bibliothèque? Über die Brücke, señor niño, ÅÄÖ åäö",
    "🙂🚀 emoji 👩‍👩‍👧‍👦 and flags 🇫🇷🇯🇵 ✨", "digits 0123456789 3.14159 1,000,000 ٣٤٥ ४२",
    "    leading spaces", "trailing spaces    ", "tabs\tand\t\ttabs", "new\nlines\n\n\nmany", "crlf\r\nline",
    "def f(x):\n    return x ** 2  # square\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "<|im_start|>user\nhi<|im_end|>", "text with <|endoftext|> inside", "<|im_end|><|im_start|>",
    "nbsp\u00a0space, ideographic\u3000space, nel\u0085char, line\u2028sep", "Ελληνικά και русский язык, 한국어 텍스트",
    "mixed中文English混合123", "   ", "a", "日本語のテキストです。カタカナ、ひらがな。", "₿ € £ ¥ © ® ™ ∑ ∫ √",
]
rng = random.Random(7)
lines = []
for i in range(3000):
    k = rng.randint(1, 4)
    lines.append(" ".join(rng.choice(pieces) for _ in range(k)) + (" " * rng.randint(0, 3)))
lines += pieces
corpus = work / "corpus.jsonl"
corpus.write_text("".join(json.dumps({"text": t}, ensure_ascii=bool(i % 2)) + "\n" for i, t in enumerate(lines)),
                  encoding="utf-8")


def run(*args):
    # Bytes, not text=True: universal newlines would turn a decoded "\r\n" into "\n".
    return subprocess.run([xlhost, *args], check=True, capture_output=True).stdout.decode("utf-8")


def xlhost_ids(tokenizer_json):
    out = run("tokenizer", "encode", "--tokenizer", str(tokenizer_json), "--jsonl", str(corpus))
    return [json.loads(l) for l in out.splitlines()]


failures = []


def compare(name, tokenizer_json, prefix_space=False):
    hf = Tokenizer.from_file(str(tokenizer_json))
    ours = xlhost_ids(tokenizer_json)
    assert len(ours) == len(lines), f"{name}: {len(ours)} id lines for {len(lines)} texts"
    bad = [i for i, t in enumerate(lines) if hf.encode(t).ids != ours[i]]
    for i in bad[:3]:
        print(f"{name}: line {i} {lines[i]!r}\n  tokenizers {hf.encode(lines[i]).ids}\n  xlhost     {ours[i]}")
    if bad:
        failures.append(f"{name}: {len(bad)} of {len(lines)} lines differ")
    # Both decoders give the same text; without a prefix space it is the original, special
    # tokens dropped.
    ids_file = work / f"{name}.ids.jsonl"
    ids_file.write_text("".join(json.dumps(x) + "\n" for x in ours))
    decoded = [json.loads(l) for l in run("tokenizer", "decode", "--tokenizer", str(tokenizer_json),
                                          "--jsonl", str(ids_file)).split("\n")[:-1]]
    for i, got in enumerate(decoded):
        expected = lines[i]
        for s in SPECIAL:
            expected = expected.replace(s, "")
        if got != hf.decode(ours[i]):
            failures.append(f"{name}: xlhost decodes line {i} to {got!r}, tokenizers to {hf.decode(ours[i])!r}")
        if not prefix_space and got != expected:
            failures.append(f"{name}: line {i} decodes to {got!r}, expected {expected!r}")
    print(f"{name}: {len(lines) - len(bad)}/{len(lines)} lines identical, {sum(map(len, ours))} tokens")


# 1. xlhost trains; tokenizers and transformers load it; 1 and 2 threads give the same file.
for threads in ("1", "2"):
    run("tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "700", "--special", ",".join(SPECIAL),
        "--threads", threads, "--out", str(work / f"xl{threads}"))
if (work / "xl1/tokenizer.json").read_bytes() != (work / "xl2/tokenizer.json").read_bytes():
    failures.append("xlhost training with 1 and 2 threads wrote different tokenizer.json files")
trained = json.loads((work / "xl1/tokenizer.json").read_text(encoding="utf-8"))
if len(trained["model"]["vocab"]) != 700:
    failures.append(f"xlhost trained {len(trained['model']['vocab'])} tokens, asked for 700")
compare("xlhost-trained", work / "xl1/tokenizer.json")

from transformers import AutoTokenizer  # noqa: E402  (slow import, after the fast checks)

fast = AutoTokenizer.from_pretrained(str(work / "xl1"))
if fast.encode(lines[5], add_special_tokens=False) != Tokenizer.from_file(str(work / "xl1/tokenizer.json")).encode(lines[5]).ids:
    failures.append("transformers encodes differently from tokenizers")
chat = fast.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], tokenize=False)
if chat != "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n":
    failures.append(f"transformers renders the chat template as {chat!r}")
if (fast.eos_token, fast.bos_token, fast.pad_token) != ("<|im_end|>", "<|im_start|>", "<|endoftext|>"):
    failures.append(f"special tokens in transformers: {fast.eos_token} {fast.bos_token} {fast.pad_token}")


# 2. tokenizers trains (MiniMind's recipe and variants); xlhost loads and encodes the same.
def hf_train(name, pre_tokenizer, merges_as_strings=False):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(work / "corpus.txt")], trainer)
    path = work / name / "tokenizer.json"
    path.parent.mkdir(exist_ok=True)
    tok.save(str(path))
    if merges_as_strings:  # the older file format: "a b"
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    compare(name, path, prefix_space=getattr(pre_tokenizer, "add_prefix_space", False))


(work / "corpus.txt").write_text("\n".join(lines), encoding="utf-8")
hf_train("hf-minimind", pre_tokenizers.ByteLevel(add_prefix_space=False))
hf_train("hf-prefix-space", pre_tokenizers.ByteLevel(add_prefix_space=True), merges_as_strings=True)
qwen_split = Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
hf_train("hf-split-then-bytelevel", pre_tokenizers.Sequence([
    pre_tokenizers.Split(qwen_split, behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))

if failures:
    print("FAILED:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("tokenizer oracle: all identical")
