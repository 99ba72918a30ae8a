#!/usr/bin/env bats
# cancel.sh on a run submitted to the fake Slurm.

setup() {
  load test_helper
  submit_a_run
}

@test "--help exits 0" {
  run -0 "${LTSFLOW_SCRIPTS}/cancel.sh" --help
  [[ "${lines[0]}" == "Usage: cancel.sh RUN_DIR" ]]
}

@test "cancel.sh cancels every job on its own cluster, and status.sh then says so" {
  run -0 "${LTSFLOW_SCRIPTS}/cancel.sh" "${RUN_DIR}"
  [[ "$(shim_calls scancel | grep -c -- '--clusters=zeus')" == 2 ]]
  [[ "$(shim_calls scancel | grep -c -- '--clusters=magnus')" == 2 ]]
  [[ -e "${RUN_DIR}/cancelled" ]]
  run -9 "${LTSFLOW_SCRIPTS}/status.sh" "${RUN_DIR}"
  [[ "$(printf '%s\n' "${lines[@]:1:4}" | awk '{print $4}' | sort -u)" == CANCELLED ]]
  [[ "${lines[6]}" == "result: failed ("* ]]
}

@test "a directory that is not a run is refused with exit 2" {
  run -2 "${LTSFLOW_SCRIPTS}/cancel.sh" "${BATS_TEST_TMPDIR}"
}
