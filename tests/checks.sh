# Shared by the end-to-end scripts: sourced after they set $work (a scratch folder).
#   check NAME COMMAND...   counts COMMAND's success; on failure prints NAME and its output
#   contains TEXT NEEDLE     whether TEXT holds NEEDLE (a fixed string)
#   finish                  prints the counts; the script's exit status
failures=0 passed=0
check() {
  local name=$1; shift
  if "$@" >"$work/last_check.log" 2>&1; then passed=$((passed + 1)); else
    echo "FAILED: $name"; tail -20 "$work/last_check.log"; failures=$((failures + 1)); fi
}
contains() { grep -qF -- "$2" <<<"$1"; }
finish() {
  echo "$passed passed, $failures failed"
  test "$failures" -eq 0
}
