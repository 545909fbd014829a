#!/usr/bin/env bash
# Two hosts, not one: two network namespaces joined by a veth pair, one rank in each, the
# rendezvous on the first one's address. The 2-rank losses must equal one process's with
# the same global batch; with the link taken down mid-run both ranks must end with one
# clear line within dist.timeout_s, the last checkpoint must be intact, and --resume auto
# must continue it once the link is back. Needs root (ip netns); skips, saying why, without.
# Usage: two_hosts_end_to_end.sh XLHOST BUILD_DIR
set -u
xlhost=$1 build=$2
if [[ $(id -u) -ne 0 ]] || ! command -v ip >/dev/null || ! ip netns add xlhost-probe-$$ 2>/dev/null; then
  echo "SKIPPED: needs root and network namespaces (ip netns, iproute2)"; exit 0
fi
ip netns del xlhost-probe-$$
work=$(mktemp -d)
a=xlh-a-$$ b=xlh-b-$$ net=10.$((RANDOM % 200 + 20)).$((RANDOM % 250)).
cleanup() {
  pkill -f "$work/exp" 2>/dev/null
  ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
source "$(dirname "$0")/checks.sh"
cd "$work"
ip netns add "$a" && ip netns add "$b" && ip link add va$$ type veth peer name vb$$ &&
  ip link set va$$ netns "$a" && ip link set vb$$ netns "$b" &&
  ip -n "$a" addr add ${net}1/24 dev va$$ && ip -n "$b" addr add ${net}2/24 dev vb$$ &&
  ip -n "$a" link set va$$ up && ip -n "$b" link set vb$$ up && ip -n "$a" link set lo up && ip -n "$b" link set lo up ||
  { echo "FAILED: cannot make the two namespaces"; exit 1; }

"$xlhost" data synth --out data --entities 20 --train-docs 300 --val-docs 40 >/dev/null
config() {  # config ID BATCH STEPS
  cat > "exp-$1.json" <<JSON
{"experiment": {"id": "$1"},
 "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 259},
 "data": {"train_path": "data/train.jsonl", "val_path": "data/val.jsonl", "seq_len": 32},
 "train": {"batch_size": $2, "max_steps": $3, "lr": 3e-3, "threads": 1, "log_interval": 1, "checkpoint_interval": 5, "seed": 7},
 "eval": {"max_batches": 2}, "dist": {"timeout_s": 12},
 "metrics": {"enabled": false}}
JSON
  echo "$work/exp-$1.json"
}
# rank NAMESPACE RANK CONFIG [ARGS...]: one rank of a 2-rank run, the store on $a's address.
rank() {
  local ns=$1 r=$2 cfg=$3; shift 3
  ip netns exec "$ns" env RANK=$r WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=${net}1 MASTER_PORT=29517 \
    "$xlhost" run -p "$build/plugins/model_original.so" -c "$cfg" "$@"
}
losses() { grep -o '"step":[0-9]*,"total_steps":[0-9]*,"loss":[0-9.e-]*' "out/$1/train.log" | sed 's/.*"loss"://'; }

"$xlhost" run -p "$build/plugins/model_original.so" -c "$(config single 8 10)" >single.log 2>&1
check "one process, batch 8" test $? -eq 0
cfg=$(config two 4 10)
rank "$a" 0 "$cfg" >two0.log 2>&1 & p0=$!
rank "$b" 1 "$cfg" >two1.log 2>&1 & p1=$!
wait $p0; c0=$?; wait $p1; c1=$?
check "2 ranks in 2 namespaces complete (exit $c0, $c1)" test "$c0$c1" = 00
check "the record names 2 hosts' ranks" grep -q '"world_size": 2' out/two/record.json
close=$(paste <(losses single) <(losses two) | awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d} END {print (NR == 10 && m < 1e-5) ? "yes" : "no " NR " " m}')
check "the 10 losses equal one process's within 1e-5 ($close)" test "$close" = yes

# The link goes down mid-run, once a checkpoint is written (the first one: with 3 kept and a
# checkpoint every 5 steps, a later one such as step 10 can be written and removed again
# between two looks on a loaded machine, and the run end before the link goes down).
cfg=$(config cut 4 400)
rank "$a" 0 "$cfg" >cut0.log 2>&1 & p0=$!
rank "$b" 1 "$cfg" >cut1.log 2>&1 & p1=$!
for _ in $(seq 1 600); do compgen -G "out/cut/checkpoints/step_*/manifest.json" >/dev/null && break; sleep 0.1; done
ip -n "$b" link set vb$$ down
down_at=$(date +%s)
wait $p0; c0=$?; wait $p1; c1=$?
seconds=$(($(date +%s) - down_at))
check "both ranks end non-zero after the link went down (exit $c0, $c1)" test "$c0" -ne 0 -a "$c1" -ne 0
check "within dist.timeout_s and a margin ($seconds s)" test "$seconds" -le 30
for r in 0 1; do
  check "rank $r ends with one clear line: $(tail -1 cut$r.log)" grep -q "^xlhost: error: rank $r: .* failed" <(tail -1 cut$r.log)
  check "rank $r: no internal error" bash -c "! grep -q 'internal error' cut$r.log"
done
last=$(ls -d out/cut/checkpoints/step_* | tail -1)
check "the last checkpoint ($last) is complete" test -f "$last/manifest.json" -a -f "$last/optimizer.pt"
ip -n "$b" link set vb$$ up
sed -i 's/"max_steps": 400/"max_steps": 30/' "$cfg"
rank "$a" 0 "$cfg" --resume auto >resume0.log 2>&1 & p0=$!
rank "$b" 1 "$cfg" --resume auto >resume1.log 2>&1 & p1=$!
wait $p0; c0=$?; wait $p1; c1=$?
check "--resume auto completes once the link is back (exit $c0, $c1)" test "$c0$c1" = 00
check "it resumed from the last checkpoint" grep -q "resumed from .*$(basename "$last")" resume0.log
finish
