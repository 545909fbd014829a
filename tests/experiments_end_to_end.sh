#!/usr/bin/env bash
# The experiment workflow of issue 6 in a scratch git repository: exp new, a clean run under
# --require-clean and its record against git, a dirty tree refused, the recorded
# reproduction command re-run to the same final loss, exp compare, exp report (gnuplot
# pictures), record.md filled in the run folder (the tree stays clean), and a detached run followed by exp status and exp stop.
# Usage: experiments_end_to_end.sh XLHOST BUILD_DIR
set -u
xlhost=$1 build=$2
plugin=$build/plugins/model_original.so
work=$(mktemp -d)
trap 'kill $(cat "$work/detached.pid" 2>/dev/null) 2>/dev/null; rm -rf "$work"' EXIT
source "$(dirname "$0")/checks.sh"
cd "$work"
json_field() { grep -o "\"$2\": *\"[^\"]*\"" "$1" | head -1 | sed 's/.*: *"\(.*\)"/\1/'; }
json_number() { grep -o "\"$2\": *[-0-9.eE+]*" "$1" | head -1 | sed 's/.*: *//'; }

git init -q . && git config user.name test && git config user.email test@example.com
printf 'out/\ndata/\ncache/\nlast_check.log\nrepro/\nresume_out/\nunequal/\nequal/\n' >.gitignore
"$xlhost" data synth --out data --entities 20 --train-docs 300 --val-docs 40 >/dev/null
"$xlhost" exp new 0.1.0 --desc "tiny baseline" >/dev/null
# The template's placeholders, filled the way a researcher would.
cat >experiments/0.1.0/exp.json <<'JSON'
{"experiment": {"id": "0.1.0", "description": "tiny baseline"},
 "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259},
 "data": {"train_path": "data/train.jsonl", "val_path": "data/val.jsonl", "seq_len": 32},
 "train": {"batch_size": 4, "max_steps": 30, "lr": 3e-3, "threads": 2, "log_interval": 5},
 "eval": {"interval": 10, "max_batches": 2},
 "generate": {"prompts_path": "data/prompts.txt", "max_new_tokens": 8, "samples": 2},
 "metrics": {"listen": "127.0.0.1:0"}}
JSON
git add -A && git commit -qm "experiment 0.1.0"

out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --require-clean 2>&1); code=$?
check "clean run under --require-clean" test $code -eq 0
record=out/0.1.0/record.json
check "record has the repository's commit" test "$(json_field $record commit)" = "$(git rev-parse HEAD)"
check "record says clean" grep -q '"dirty": false' $record
check "train md5 as md5sum computes it" grep -q "\"md5\": \"$(md5sum data/train.jsonl | cut -c1-32)\"" $record
check "samples saved" test -s out/0.1.0/samples.txt
check "the run folder's record.md has the plan and the results" \
  grep -q "| status | completed |" out/0.1.0/record.md
check "the tracked record.md is the plan, untouched" git diff --quiet HEAD -- experiments/0.1.0/record.md
check "the run left the tree clean: $(git status --porcelain | tr '\n' ' ')" test -z "$(git status --porcelain)"
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --require-clean --set experiment.id=0.1.8 2>&1); code=$?
check "so the next --require-clean run runs" test $code -eq 0

# An untracked file makes the tree dirty: refused under --require-clean, and in diff.patch otherwise.
echo "a helper that is not committed yet" >helper.py
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --require-clean --set experiment.id=0.1.9 2>&1); code=$?
check "dirty tree refused" test $code -eq 2
check "dirty file named" contains "$out" "helper.py"
check "refused run left no record" test ! -e out/0.1.9
"$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.1.7 --set train.max_steps=2 >/dev/null 2>&1
check "the untracked file's content is in diff.patch" grep -q "a helper that is not committed yet" out/0.1.7/diff.patch
rm helper.py
out=$("$xlhost" exp report 0.1.0 0.1.7 --dest unequal 2>&1)
check "exp report flags runs of unequal steps and tokens" contains "$out" "unequal budgets (0.1.0 30 steps"
check "... in report.md too" grep -q "Unequal budgets" unequal/report.md
out=$("$xlhost" exp report 0.1.0 0.1.8 --dest equal 2>&1)
check "... and not runs of equal ones" test "$(grep -c -i "unequal" <<<"$out")" -eq 0
out=$("$xlhost" exp archive 0.1.7 2>&1); code=$?
check "exp archive moves a run away: $out" test $code -eq 0 -a ! -e out/0.1.7
check "... into out/.archive, nothing deleted" test -f "$(echo out/.archive/0.1.7-*/record.json)"
check "... and exp list no longer shows it" test "$("$xlhost" exp list 2>&1 | grep -c '^0\.1\.7 ')" -eq 0

# The reproduction command recorded by the run gives the same final loss.
exact=$(json_field $record exact_command)
check "exact command recorded" contains "$exact" "out/0.1.0/config.json"
out=$(eval "\"$xlhost\"${exact#xlhost}" --set run.out_dir=repro 2>&1); code=$?
check "reproduction runs" test $code -eq 0
check "reproduction gives the same final loss" \
  test "$(json_number repro/0.1.0/record.json final_loss)" = "$(json_number $record final_loss)"
check "final loss recorded" test -n "$(json_number $record final_loss)"

# A resume that changes the config says what changed, the record keeps every segment, and a
# change of the model's shape is refused with the record left as it was.
cp -r out/0.1.0 resumed && mkdir -p resume_out && mv resumed resume_out/0.1.0
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set run.out_dir=resume_out --resume \
      --set train.lr=1e-3 --set train.max_steps=40 2>&1); code=$?
check "resume with a changed config runs" test $code -eq 0
check "the changed keys are listed at start" contains "$out" "resumed with a changed config: train.lr 0.003 -> 0.001, train.max_steps 30 -> 40"
check "the record keeps both segments and the changes" python3 - resume_out/0.1.0/record.json <<'PY'
import json, sys
history = json.load(open(sys.argv[1]))["results"]["segment_history"]
assert [(s["first_step"], s["steps"]) for s in history] == [(0, 30), (30, 40)], history
assert [c["key"] for c in history[1]["config_changes"]] == ["train.lr", "train.max_steps"], history
assert history[1]["start_time"] and history[1]["end_time"], history
PY
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set run.out_dir=resume_out --resume \
      --set model.dim=64 --set train.max_steps=50 2>&1); code=$?
check "a resume that changes the model's shape is refused" test $code -eq 2
check "... naming the key" contains "$out" "--resume with model.dim 32 -> 64"
check "... and the record is unchanged" test "$(json_number resume_out/0.1.0/record.json steps)" = 40

"$xlhost" exp new 0.1.1 --from 0.1.0 --desc "higher lr" >/dev/null
sed -i 's/"lr": 0.003/"lr": 0.01/' experiments/0.1.1/exp.json
"$xlhost" run -p "$plugin" -c experiments/0.1.1/exp.json >/dev/null 2>&1
check "second run recorded as dirty" grep -q '"dirty": true' out/0.1.1/record.json

out=$("$xlhost" exp compare 0.1.0 0.1.1 2>&1); code=$?
check "exp compare exits 0" test $code -eq 0
check "compare shows the changed lr" grep -qE '^train\.lr +0\.003 +0\.01$' <<<"$out"
check "compare hides equal keys" bash -c "! grep -q 'model.dim' <<<'$out'"
check "compare marks a best val loss" grep -qE '^val loss .*\*' <<<"$out"
out=$("$xlhost" exp compare 0.1.0 4.0.4 2>&1); code=$?
check "compare with a missing run fails" test $code -eq 2
check "missing run named" contains "$out" "no record for 4.0.4"

out=$("$xlhost" exp report 0.1.1 0.1.0 2>&1); code=$?
check "exp report exits 0" test $code -eq 0
report=out/0.1.1/report
for picture in loss lr throughput; do
  check "$picture.svg is a non-empty SVG" grep -q '<svg' $report/$picture.svg
  check "$picture.svg has curves" test "$(grep -c '<path' $report/$picture.svg)" -ge 3
done
check "report has the plan" grep -q "Hypothesis" $report/report.md
check "report has the comparison" grep -q '| train.lr | 0.01 | 0.003 |' $report/report.md
check "report has samples" grep -q "EOS rate" $report/report.md
check "report links the pictures" grep -q '](loss.svg)' $report/report.md
mkdir -p out/6.6.6 && echo '{"status": 1}' >out/6.6.6/record.json
out=$("$xlhost" exp report 6.6.6 2>&1); code=$?
check "report of a corrupted record fails" test $code -eq 2
check "corrupted record named" contains "$out" "out/6.6.6/record.json: corrupted record"

# Repeated seeds: sub-runs with their own seed, a record of mean ± standard deviation, and a
# best marked in exp compare only when the difference exceeds the spread.
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.3.0 --seeds 2 2>&1); code=$?
check "--seeds 2 exits 0" test $code -eq 0
check "sub-run of the first seed" test -s out/0.3.0/seeds/0.3.0-seed1337/train.log
check "sub-run of the second seed" grep -q '"seed": 1338' out/0.3.0/seeds/0.3.0-seed1338/config.json
check "group record lists the seeds" grep -qE '"seeds": \[' out/0.3.0/record.json
check "group record has the spread" grep -q '"results_std"' out/0.3.0/record.json
mean=$(python3 -c 'import json,sys; r=[json.load(open(f"out/0.3.0/seeds/0.3.0-seed{s}/record.json"))["results"]["val_loss"] for s in (1337,1338)]; print(f"{sum(r)/2:.4f}")')
out=$("$xlhost" exp compare 0.1.0 0.3.0 2>&1); code=$?
check "compare with a seed group exits 0" test $code -eq 0
check "compare shows mean ± std" grep -qE "^val loss +[0-9.]+ +$mean ± [0-9.]+\$" <<<"$out"
check "compare counts the seeds" grep -qE '^seeds +1 +2$' <<<"$out"
out=$("$xlhost" exp report 0.3.0 0.1.0 2>&1); code=$?
check "report of a seed group exits 0" test $code -eq 0
check "report explains seeds and spread" grep -q "2 seeds (mean ± standard deviation)" out/0.3.0/report/report.md
check "report warns about single-seed runs" grep -q "A run with one seed has no measured spread" out/0.3.0/report/report.md
check "report draws every seed" test "$(grep -o "0.3.0 seed 133[78] train" out/0.3.0/report/plots.gp | sort -u | wc -l)" -eq 2
check "report has samples of every run" test "$(grep -c '^### ' out/0.3.0/report/report.md)" -ge 2
# A run kept elsewhere (an out-of-tree plugin's folder) compares by its path.
"$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.9.0 --set run.out_dir=elsewhere/out \
  >/dev/null 2>&1
out=$("$xlhost" exp compare 0.1.0 elsewhere/out/0.9.0 2>&1); code=$?
check "compare takes a run folder by path" test $code -eq 0
check "the path is the column" grep -qE '^ +0\.1\.0 +elsewhere/out/0\.9\.0$' <<<"$out"
out=$("$xlhost" exp list 2>&1)
check "exp list shows the group with its spread" grep -qE "^0\.3\.0 .* ± " <<<"$out"
# Again without --overwrite: its first seed refuses, and the finished group's record stays.
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.3.0 --seeds 2 2>&1); code=$?
check "a seed group run again is refused" test $code -eq 2
check "... saying why" contains "$out" "holds an earlier run"
check "... and the group's record is kept" grep -q '"results_std"' out/0.3.0/record.json

# In the background: returns at once, shows in exp status, stops with a checkpoint.
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.2.0 \
  --set train.max_steps=1000000 --detach 2>&1); code=$?
grep -o 'pid [0-9]*' <<<"$out" | cut -c5- >detached.pid
check "detach exits 0" test $code -eq 0
check "detach names the log" contains "$out" "out/0.2.0/run.log"
for _ in $(seq 1 300); do grep -q '"loss"' out/0.2.0/train.log 2>/dev/null && break; sleep 0.2; done
out=$("$xlhost" exp status 2>&1)
check "exp status shows the run" grep -qE '^0\.2\.0 +model_original +pid [0-9]+ +step [0-9]+/1000000' <<<"$out"
check "exp status shows metrics" contains "$out" "metrics http://127.0.0.1:"
out=$("$xlhost" exp archive 0.2.0 2>&1); code=$?
check "a running run is not archived" test $code -eq 2 -a -f out/0.2.0/record.json
check "... saying so" contains "$out" "is already running"
mkdir -p elsewhere
out=$("$xlhost" exp status --out elsewhere --out out 2>&1)
check "exp status looks in every --out folder and says where" grep -qE "^0\.2\.0 +model_original +pid [0-9]+ +in out/0\.2\.0" <<<"$out"
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.2.0 2>&1); code=$?
check "second run of a running id refused" contains "$out" "experiment 0.2.0 is already running"
out=$("$xlhost" exp stop 0.2.0 --wait 120 2>&1); code=$?
check "exp stop exits 0" test $code -eq 0
check "exp stop reports the checkpoint" contains "$out" "interrupted, checkpoint out/0.2.0/checkpoints/step_"
check "stopped run's record" grep -q '"status": "interrupted"' out/0.2.0/record.json
out=$("$xlhost" exp stop 0.2.0 2>&1); code=$?
check "stopping a stopped run explained" contains "$out" "is not running (status interrupted)"
out=$("$xlhost" exp status 2>&1)
check "nothing running afterwards" contains "$out" "no experiment is running"

# A seed group in the background: a "running" record from its start, its current seed in
# exp status, and exp stop ends the seed with a checkpoint and the group after it.
out=$("$xlhost" run -p "$plugin" -c experiments/0.1.0/exp.json --set experiment.id=0.4.0 \
  --set train.max_steps=1000000 --seeds 2 --detach 2>&1); code=$?
grep -o 'pid [0-9]*' <<<"$out" | cut -c5- >>detached.pid
check "--seeds with --detach exits 0" test $code -eq 0
check "the group's record exists at once" grep -q '"status": "running"' out/0.4.0/record.json
for _ in $(seq 1 300); do grep -q '"loss"' out/0.4.0/seeds/0.4.0-seed1337/train.log 2>/dev/null && break; sleep 0.2; done
out=$("$xlhost" exp status 2>&1)
check "exp status shows the group's current seed" \
  grep -qE '^0\.4\.0 +model_original +pid [0-9]+ +seed run 0\.4\.0-seed1337 +step [0-9]+/1000000' <<<"$out"
out=$("$xlhost" exp stop 0.4.0 --wait 120 2>&1); code=$?
check "exp stop of a seed group exits 0" test $code -eq 0
check "the group is interrupted" grep -q '"status": "interrupted"' out/0.4.0/record.json
check "its seed saved a checkpoint" test -d out/0.4.0/seeds/0.4.0-seed1337/checkpoints
check "no second seed started" test ! -e out/0.4.0/seeds/0.4.0-seed1338

finish
