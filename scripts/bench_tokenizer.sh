#!/usr/bin/env bash
# Tokenizer training and encoding speed, xlhost next to Hugging Face tokenizers on the same
# corpus and machine. Timed runs, not tests.
#   scripts/bench_tokenizer.sh [ENTITIES] [DOCS]   corpus size (default 4000 entities, 60000 documents)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh xlhost >/dev/null
python=$(scripts/python-env.sh)/bin/python
xlhost=build/bin/xlhost
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$xlhost" data synth --out "$work/synth" --entities "${1:-4000}" --train-docs "${2:-60000}" >/dev/null
corpus=$work/synth/train.jsonl
echo "corpus: $(wc -l <"$corpus") documents, $(du -h "$corpus" | cut -f1) ($corpus: synthetic facts)"
echo

echo "training a 6400-token vocabulary (special tokens <|endoftext|>, <|im_start|>, <|im_end|>):"
for threads in 1 2; do
  start=$(date +%s.%N)
  "$xlhost" tokenizer train --corpus "$corpus" --vocab-size 6400 --threads "$threads" --out "$work/xl" 2>/dev/null |
    sed -n 2p | sed "s/^/  xlhost, $threads thread(s): /"
  printf "  xlhost, %s thread(s): %.2f s wall\n" "$threads" "$(echo "$(date +%s.%N) - $start" | bc)"
done
# rayon sizes its thread pool once per process: one process per thread count.
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads "$python" - "$corpus" "$threads" <<'PY' | sed 's/^/  /'
import json, sys, time
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
texts = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8")]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
trainer = trainers.BpeTrainer(vocab_size=6400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                              show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
start = time.time()
tok.train_from_iterator(texts, trainer)
print(f"tokenizers, {sys.argv[2]} thread(s): {time.time() - start:.2f} s, {tok.get_vocab_size()} tokens")
PY
done
echo

echo "encoding the corpus with xlhost's tokenizer.json (ids printed to /dev/null):"
for threads in 1 2; do
  "$xlhost" tokenizer encode --tokenizer "$work/xl/tokenizer.json" --jsonl "$corpus" --threads "$threads" 2>&1 >/dev/null |
    sed 's/^/  xlhost: /'
done
for threads in 1 2; do
  RAYON_NUM_THREADS=$threads "$python" - "$corpus" "$work/xl/tokenizer.json" "$threads" <<'PY' | sed 's/^/  /'
import json, sys, time
from tokenizers import Tokenizer
texts = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8")]
tok = Tokenizer.from_file(sys.argv[2])
mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
start = time.time()
tok.encode_batch(texts)
s = time.time() - start
print(f"tokenizers encode_batch: {mb:.2f} MB in {s:.3f} s: {mb / s:.2f} MB/s on {sys.argv[3]} thread(s)")
PY
done
