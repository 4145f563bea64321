# Sourced by .ci/run and scripts/check.sh: `stage NAME COMMAND...` runs a command and records
# its wall time; the table of every stage is printed when the outermost script exits (also on a
# failure, which names the stage that failed).
if [[ -z "${GEMMA_GRAPH_STAGES:-}" ]]; then
  GEMMA_GRAPH_STAGES=$(mktemp)
  export GEMMA_GRAPH_STAGES
  export GEMMA_GRAPH_STAGES_T0=$SECONDS
  print_stages() {
    local rc=$?
    local total=$((SECONDS - GEMMA_GRAPH_STAGES_T0))
    {
      echo
      echo "stage times (wall clock):"
      while IFS=$'\t' read -r secs status free name; do
        printf '  %-34s %5d s  %-12s %s free after\n' "$name" "$secs" \
          "$([[ $status == 0 ]] && echo ok || echo "FAILED ($status)")" "$free"
      done <"$GEMMA_GRAPH_STAGES"
      printf '  %-34s %5d s  (%d min)\n' "total" "$total" $((total / 60))
    } >&2
    rm -f "$GEMMA_GRAPH_STAGES"
    exit $rc
  }
  trap print_stages EXIT
fi

stage() {
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "== stage: $name" >&2
  "$@" || rc=$?
  # Free disk space after the stage (where the clone is): a run that fills the disk shows where.
  local free
  free=$(df -h --output=avail . 2>/dev/null | tail -1 | tr -d ' ') || free="?"
  printf '%d\t%d\t%s\t%s\n' $((SECONDS - t0)) "$rc" "${free:-?}" "$name" >>"$GEMMA_GRAPH_STAGES"
  return $rc
}
