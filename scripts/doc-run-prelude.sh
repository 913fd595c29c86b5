# Sourced by scripts/run-doc-commands at the start of each document's flow
# (bash). Maps the docs' `cargo` lines onto this CI run's build, starts
# server lines in the background, and reports the failing block.
set -euo pipefail
__doc_where="(start)"
__doc_quick=0
__doc_logs="$PWD/.doc-run-logs"
mkdir -p "$__doc_logs"

__doc_t0=$SECONDS
__doc_block() {
  echo
  [ "$__doc_where" = "(start)" ] || echo "   ($__doc_where: $((SECONDS - __doc_t0))s)"
  __doc_t0=$SECONDS
  __doc_where=$1
  __doc_quick=$2
  echo "-- $__doc_where$([ "$2" = 1 ] && echo ' (quick)')"
}

declare -A __doc_daemons=()

__doc_kill() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

__doc_stop() {
  local name
  for name in "${!__doc_daemons[@]}"; do __doc_kill "${__doc_daemons[$name]}"; done
  __doc_daemons=()
}

__doc_end() {
  echo
  echo "   ($__doc_where: $((SECONDS - __doc_t0))s)"
  __doc_stop
}

# On any failure (set -e): which block, which command, the servers' logs.
__doc_exit() {
  local rc=$? cmd=$BASH_COMMAND
  if [ "$rc" != 0 ]; then
    echo "run-doc-commands: FAILED in $__doc_where (exit $rc): $cmd" >&2
    local f
    for f in "$__doc_logs"/*.log; do
      [ -e "$f" ] || continue
      echo "--- $f (last lines)" >&2
      tail -n 15 "$f" >&2
    done
  fi
  __doc_stop
  exit "$rc"
}
trap __doc_exit EXIT

# A server line: started in the background (a second terminal), waited for
# until it reports that it listens.
__doc_daemon() {
  local name=$1
  shift
  local log="$__doc_logs/$name.log"
  # One server of a kind per flow: a second `cargo run --bin cloud` restarts it.
  if [ -n "${__doc_daemons[$name]:-}" ]; then __doc_kill "${__doc_daemons[$name]}"; fi
  "$DOC_RUN_BIN/$name" "$@" </dev/null >"$log" 2>&1 &
  local pid=$!
  __doc_daemons[$name]=$pid
  local _
  for _ in $(seq 1 300); do
    if grep -q -E 'cloud listening|"event":"listening"' "$log"; then
      echo "   ($name started in the background, pid $pid, log $log)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "$name exited during start-up" >&2; return 1; }
    sleep 0.1
  done
  cat "$log" >&2
  echo "$name did not start listening in 30 s" >&2
  return 1
}

# `cloud ARGS` / `gate-node ARGS` as the docs write them (a binary on PATH).
__doc_bin() {
  local name=$1
  shift
  local a pos=()
  for a in "$@"; do
    case "$a" in -*) ;; *) pos+=("$a") ;; esac
  done
  if [ "$name" = cloud ] && [ ${#pos[@]} -eq 0 ] && [[ " $* " != *" --help "* && " $* " != *" -h "* && " $* " != *" --version "* && " $* " != *" -V "* ]]; then
    __doc_daemon cloud "$@"
  elif [ "$name" = gate-node ] && [[ " ${pos[*]} " == *" run "* ]]; then
    __doc_daemon gate-node "$@"
  else
    "$DOC_RUN_BIN/$name" "$@"
  fi
}
cloud() { __doc_bin cloud "$@"; }
gate-node() { __doc_bin gate-node "$@"; }

# The bench binaries, built once per CI run with the test build's profile
# and features (only the bench targets compile).
__doc_bench_exe() {
  local pkg=$1 bench=$2 list="$DOC_RUN_WORK/benches.tsv"
  if [ ! -s "$list" ]; then
    echo "   (building the bench targets: cargo test --workspace --benches --no-run)" >&2
    # From the checkout itself, not the document's directory of links: a
    # bench bakes in CARGO_MANIFEST_DIR (anvil's path), and the directory
    # of links is gone after the run while its binary stays in the cache.
    (cd "$DOC_RUN_REPO" && command cargo test --workspace --benches --no-run --message-format=json) 2>"$DOC_RUN_WORK/bench-build.log" |
      jq -r 'select(.reason == "compiler-artifact" and .executable != null and (.target.kind | index("bench")))
             | (.package_id | if test("#[^@/]+@") then capture("#(?<n>[^@/]+)@").n
                              else capture("/(?<n>[^/#]+)#").n end) as $pkg
             | "\($pkg)\t\(.target.name)\t\(.executable)\t\(.manifest_path)"' >"$list" ||
      { cat "$DOC_RUN_WORK/bench-build.log" >&2; return 1; }
  fi
  awk -F'\t' -v p="$pkg" -v b="$bench" '$1 == p && $2 == b { print $3 "\t" $4; exit }' "$list"
}

cargo() {
  local cmd=${1:-}
  shift || true
  local pkg="" bin="" example="" bench="" args=() seen_dashes=0
  while [ $# -gt 0 ]; do
    if [ $seen_dashes = 1 ]; then args+=("$1"); shift; continue; fi
    case "$1" in
      --) seen_dashes=1 ;;
      -p | --package) pkg=$2; shift ;;
      --bin) bin=$2; shift ;;
      --example) example=$2; shift ;;
      --bench) bench=$2; shift ;;
      --profile) shift ;;
      --release | --workspace | --bins | --quiet | -q | --locked) ;;
      *) echo "run-doc-commands: cargo $cmd: option $1 is not mapped" >&2; return 1 ;;
    esac
    shift
  done
  case "$cmd" in
    run)
      if [ -n "$example" ]; then
        local exe="$DOC_RUN_BIN/examples/$example"
        [ -x "$exe" ] || { echo "run-doc-commands: example $example is not built by scripts/test" >&2; return 1; }
        "$exe" "${args[@]}"
        return
      fi
      [ -n "$bin" ] || bin=$pkg
      case "$bin" in
        cloud | gate-node) __doc_bin "$bin" "${args[@]}" ;;
        *) [ -x "$DOC_RUN_BIN/$bin" ] || { echo "run-doc-commands: $bin is not built" >&2; return 1; }
           "$DOC_RUN_BIN/$bin" "${args[@]}" ;;
      esac
      ;;
    build)
      local b
      for b in cloud gate-node; do [ -x "$DOC_RUN_BIN/$b" ]; done
      echo "   (the binaries: scripts/test's build in $DOC_RUN_BIN)"
      ;;
    bench)
      if [ "$__doc_quick" != 1 ]; then
        echo "run-doc-commands: a cargo bench line outside a \`doc-run: quick\` block" >&2
        return 1
      fi
      [ -n "$pkg" ] && [ -n "$bench" ] || { echo "run-doc-commands: cargo bench needs -p and --bench" >&2; return 1; }
      local found exe
      found=$(__doc_bench_exe "$pkg" "$bench")
      [ -n "$found" ] || { echo "run-doc-commands: package $pkg has no bench $bench" >&2; return 1; }
      exe=${found%%$'\t'*}
      echo "   (quick: $(basename "$exe") ${args[*]})"
      # As cargo bench runs it: in the package's directory.
      (cd "$(dirname "${found#*$'\t'}")" && "$exe" "${args[@]}")
      ;;
    *)
      echo "run-doc-commands: cargo $cmd is not mapped onto the CI build" >&2
      return 1
      ;;
  esac
}
