#!/usr/bin/env bash
# End-to-end checks of the xlhost executable: exit codes, one-line errors, a short run,
# SIGINT handling, resume, eval and generate. Usage: cli_end_to_end.sh XLHOST BUILD_DIR SOURCE_DIR
set -u
xlhost=$1 build=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "$0")/checks.sh"
cd "$work"

out=$("$xlhost" plugin info "$build/plugins/model_original.so" 2>&1); code=$?
check "plugin info exits 0" test $code -eq 0
check "plugin info shows schema" contains "$out" "n_kv_heads"
out=$("$xlhost" plugin info "$build/plugins/model_memory.so" 2>&1)
check "plugin info keeps long keys apart from their type" grep -qE "^  fusion_attention_dropout +number +0\.1 +cross_attention" <<<"$out"

out=$("$xlhost" plugin info "$build/test_plugins/wrong_abi_plugin.so" 2>&1); code=$?
check "wrong ABI exits non-zero" test $code -ne 0
check "wrong ABI is one line" test "$(wc -l <<<"$out")" -eq 1
check "wrong ABI names versions" contains "$out" "built against xlhost SDK ABI 999"

out=$("$xlhost" plugin check "$build/test_plugins/future_leak_plugin.so" 2>&1); code=$?
check "plugin check fails a leaky plugin" test $code -eq 1
check "plugin check names the leak" contains "$out" "position 0 changes when the tokens after position 0 change"
out=$("$xlhost" plugin check "$build/plugins/model_original.so" --set model.dim=32 --set model.n_layers=1 \
  --set model.n_heads=4 --set model.n_kv_heads=2 --set model.vocab_size=64 2>&1); code=$?
check "plugin check passes model_original" test $code -eq 0

out=$("$xlhost" --version 2>&1); code=$?
check "--version exits 0" test $code -eq 0
check "--version names LibTorch 2.x" grep -qE "^libtorch: 2\.[0-9]+" <<<"$out"
check "--version names CUDA" grep -qE "^cuda \(built with\): [0-9]+\.[0-9]+" <<<"$out"
check "--version names NCCL" grep -qE "^nccl: [0-9]+\.[0-9]+\.[0-9]+" <<<"$out"

out=$("$xlhost" run --plugin nope.so --config x.json 2>&1); code=$?
check "missing plugin exits 2" test $code -eq 2
check "missing plugin message" contains "$out" "nope.so: no such plugin file"

"$xlhost" data synth --out data --entities 20 --train-docs 300 --val-docs 40 >/dev/null || check "data synth" false
cat > exp.json <<JSON
{"experiment": {"id": "0.0.1"},
 "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259},
 "data": {"train_path": "data/train.jsonl", "val_path": "data/val.jsonl", "seq_len": 32},
 "train": {"batch_size": 8, "max_steps": "[MAX_STEPS]", "lr": 3e-3, "threads": 2, "log_interval": 5},
 "generate": {"prompts_path": "data/prompts.txt", "max_new_tokens": 8, "samples": 2},
 "metrics": {"listen": "127.0.0.1:0"}}
JSON
out=$("$xlhost" run -p "$build/plugins/model_original.so" -c exp.json 2>&1); code=$?
check "placeholder refused" test $code -eq 2
check "placeholder listed" contains "$out" "train.max_steps = [MAX_STEPS]"

if ! nvidia-smi -L >/dev/null 2>&1; then
  out=$("$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=1 \
    --set train.device=cuda --set experiment.id=0.0.9 --no-metrics 2>&1); code=$?
  check "device=cuda without a GPU exits 2" test $code -eq 2
  check "device=cuda without a GPU is one line" test "$(wc -l <<<"$out")" -eq 1
  check "device=cuda without a GPU says so" contains "$out" "no CUDA device"
fi

# Hostile input is one line and exit 2, never a hang, a signal or a folder outside out/.
out=$(timeout -k 5 60 "$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=1 \
  --set data.train_path=/dev/zero --no-metrics 2>&1); code=$?
check "/dev/zero as data exits 2 (got $code)" test $code -eq 2
check "/dev/zero as data is named" contains "$out" "/dev/zero: not a regular file"
out=$("$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=1 \
  --set experiment.id=../../escaped --no-metrics 2>&1); code=$?
check "an id climbing out of out/ exits 2" test $code -eq 2
check "nothing written outside out/" test ! -e ../escaped
python3 -c "print('{\"train\": ' + '[' * 100000 + ']' * 100000 + '}')" >deep.json
out=$("$xlhost" run -p "$build/plugins/model_original.so" -c deep.json 2>&1); code=$?
check "a config nested 100000 deep exits 2 (got $code)" test $code -eq 2

# Damaged plugin code that crashes only after loading, in forward: the first bytes of
# ModelOriginal::forward in a copy of the plugin become ud2, an illegal instruction.
cp "$build/plugins/model_original.so" damaged.so
forward=$(nm damaged.so | c++filt | awk '/ModelOriginal::forward\(/ && !/cold/ {print $1; exit}')
text=$(readelf -SW damaged.so | awk '{for (i = 1; i < NF; i++) if ($i == ".text") print $(i + 2), $(i + 3)}')
read -r text_address text_offset <<<"$text"
printf '\x0f\x0b' | dd of=damaged.so bs=1 seek=$((16#$forward - 16#$text_address + 16#$text_offset)) conv=notrunc status=none
check "the copy differs from the plugin" test -n "$forward" -a -n "$text_address"
out=$("$xlhost" run -p damaged.so -c exp.json --set train.max_steps=2 --set experiment.id=damaged --no-metrics 2>&1); code=$?
check "a plugin crashing in forward exits 2 (got $code)" test $code -eq 2
check "the crash names the plugin and where" grep -qE "plugin damaged.so crashed: SIGILL .* at damaged.so\+0x" <<<"$out"
check "the crash is one line" test "$(grep -c "xlhost: " <<<"$out")" -eq 1
out=$("$xlhost" exp list 2>&1)
check "exp list shows the run crashed" grep -qE "^damaged .* crashed " <<<"$out"
check "exp list gives the crash's line" grep -qF "damaged: xlhost: error: plugin damaged.so crashed: SIGILL" <<<"$out"

out=$("$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=10 2>&1); code=$?
check "short run exits 0" test $code -eq 0
check "short run prints parameters" contains "$out" "parameters"
check "short run prints samples" contains "$out" "EOS rate"
check "checkpoint written" test -f out/0.0.1/checkpoints/step_00000010/model.safetensors

# SIGINT during a long run: checkpoint and exit 0, then resume to the end.
"$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=100000 \
  --set experiment.id=0.0.2 >sigint.log 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "step 5/" sigint.log && break; sleep 0.2; done
kill -INT $pid
wait $pid; code=$?
check "SIGINT exits 0" test $code -eq 0
check "SIGINT saves checkpoint" grep -q "stop requested" sigint.log
step=$(cat out/0.0.2/checkpoints/latest 2>/dev/null)
check "latest checkpoint recorded" test -n "$step"

out=$("$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set experiment.id=0.0.2 \
  --set train.max_steps=$((10#${step#step_} + 3)) --resume 2>&1); code=$?
check "resume exits 0" test $code -eq 0
check "resume says where" contains "$out" "resumed from"

out=$("$xlhost" eval out/0.0.1 2>&1); code=$?
check "eval exits 0" test $code -eq 0
check "eval prints perplexity" contains "$out" "perplexity"
# A run configured for bfloat16 is evaluated in bfloat16 autocast: close to float32, not equal.
for dtype in float32 bfloat16; do
  "$xlhost" eval out/0.0.1 --set train.dtype=$dtype --task data/fact_choices.jsonl --limit 5 --samples $dtype.jsonl >/dev/null 2>&1
done
check "eval honours train.dtype=bfloat16: log-likelihoods close to float32's, not equal" python3 - <<'PY'
import json
fp32, bf16 = ([json.loads(l)["loglikelihoods"] for l in open(f"{d}.jsonl")] for d in ("float32", "bfloat16"))
pairs = [(a, b) for x, y in zip(fp32, bf16) for a, b in zip(x, y)]
assert len(pairs) >= 20 and any(a != b for a, b in pairs), pairs
assert all(abs(a - b) < 0.05 * abs(a) + 0.05 for a, b in pairs), pairs
PY

out=$("$xlhost" eval out/0.0.1 --facts data/facts.jsonl --set eval.max_facts=20 2>&1); code=$?
check "eval --facts exits 0" test $code -eq 0
check "eval --facts reports recall" contains "$out" "fact recall"

out=$("$xlhost" generate out/0.0.1 --prompt "The capital of" --max-new-tokens 5 --temperature 0 2>&1); code=$?
check "generate exits 0" test $code -eq 0
check "generate reports mean length" contains "$out" "mean length 5.0 new tokens"

out=$("$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=1 \
  --metrics-listen 0.0.0.0:0 2>&1); code=$?
check "non-loopback metrics refused" test $code -eq 2
check "non-loopback metrics explained" contains "$out" "metrics.allow_remote=true"

# A run killed outright (SIGKILL) leaves a record that `exp list` shows as interrupted,
# pointing at the last complete checkpoint.
"$xlhost" run -p "$build/plugins/model_original.so" -c exp.json --set train.max_steps=100000 \
  --set train.checkpoint_interval=5 --set experiment.id=0.0.3 >kill.log 2>&1 &
pid=$!
for _ in $(seq 1 300); do [[ -f out/0.0.3/checkpoints/latest ]] && break; sleep 0.2; done
kill -KILL $pid; wait $pid 2>/dev/null
out=$("$xlhost" exp list 2>&1)
check "killed run listed as interrupted" grep -qE "^0\.0\.3 .* interrupted" <<<"$out"
check "killed run points at its checkpoint" contains "$out" "0.0.3: interrupted; last good checkpoint out/0.0.3/checkpoints/step_"
check "completed run listed" grep -qE "^0\.0\.1 .* completed" <<<"$out"

# Experiment folders: versions, existing ids, missing bases, placeholders; records.
out=$("$xlhost" exp new 1.4 2>&1); code=$?
check "bad version refused" test $code -eq 2
check "bad version explained" contains "$out" "is not a version X.Y.Z"
"$xlhost" exp new 2.0.0 --desc "first" >/dev/null 2>&1
check "exp new writes config and record" test -f experiments/2.0.0/exp.json -a -f experiments/2.0.0/record.md
out=$("$xlhost" exp new 2.0.0 2>&1); code=$?
check "existing id refused" test $code -eq 2
check "existing id mentions --force" contains "$out" "--force overwrites it"
check "existing id with --force" "$xlhost" exp new 2.0.0 --force --desc again
out=$("$xlhost" exp new 2.0.1 --from 1.9.9 2>&1); code=$?
check "missing base refused" test $code -eq 2
check "missing base named" contains "$out" "--from 1.9.9: no config to start from; looked for"
check "exp new --from" "$xlhost" exp new 2.0.1 --from 2.0.0
check "--from sets the new id" grep -q '"id": "2.0.1"' experiments/2.0.1/exp.json
out=$("$xlhost" run -p "$build/plugins/model_original.so" -c experiments/2.0.1/exp.json 2>&1); code=$?
check "template placeholders refused" test $code -eq 2
check "placeholders listed" contains "$out" "train.batch_size = [BATCH_SIZE]"
out=$("$xlhost" exp show 0.0.1 2>&1); code=$?
check "exp show exits 0" test $code -eq 0
check "exp show is a summary, not the raw record" test "$(wc -l <<<"$out")" -lt 30
check "... with the status and the command" contains "$out" "status                           completed"
out=$("$xlhost" exp show 0.0.1 --json 2>&1)
check "exp show --json has the whole record" contains "$out" '"short_commit"'
mkdir -p out/9.9.9 && echo "{ broken" >out/9.9.9/record.json
out=$("$xlhost" exp show 9.9.9 2>&1); code=$?
check "corrupted record refused" test $code -eq 2
check "corrupted record named" contains "$out" "9.9.9/record.json: corrupted record"
out=$("$xlhost" exp list 2>&1)
check "exp list warns about the corrupted record" contains "$out" "warning: out/9.9.9/record.json: corrupted record"

finish
