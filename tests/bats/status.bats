#!/usr/bin/env bats
# status.sh on a run submitted to the fake Slurm.

setup() {
  load test_helper
  submit_a_run
}

@test "--help exits 0" {
  run -0 "${LTSFLOW_SCRIPTS}/status.sh" --help
  [[ "${lines[0]}" == "Usage: status.sh [--report] RUN_DIR" ]]
}

@test "status.sh shows each job with its cluster and state, and a run still pending as running" {
  run -0 "${LTSFLOW_SCRIPTS}/status.sh" "${RUN_DIR}"
  [[ "${lines[0]}" == "STEP"* ]]
  [[ "$(printf '%s\n' "${lines[@]:1:4}" | awk '{print $1, $2, $4}' | paste -sd,)" == \
    "sync_in zeus PENDING,world_to_pixel magnus PENDING,crop magnus PENDING,sync_out zeus PENDING" ]]
  [[ "${lines[5]}" == "objects: 0 of 1 succeeded, 0 failed, 1 waiting" ]]
  [[ "${lines[6]}" == "result: running" ]]
}

@test "status.sh counts the objects that succeeded and failed, and exits 9 when one failed" {
  printf '5\tget_world_2_pix.sh\toff the image\n' >"${RUN_DIR}/failed/0"
  run -9 "${LTSFLOW_SCRIPTS}/status.sh" "${RUN_DIR}"
  [[ "${lines[5]}" == "objects: 0 of 1 succeeded, 1 failed" ]]
}

@test "--report also writes the table and the result into the run directory" {
  "${LTSFLOW_ROOT}/tests/shims/scancel" --clusters=magnus "$(awk -F'\t' '$1 == "crop" {print $3}' "${RUN_DIR}/jobs.tsv")"
  run -0 "${LTSFLOW_SCRIPTS}/status.sh" --report "${RUN_DIR}"
  [[ "$(cat "${RUN_DIR}/report.txt")" == "${output}" ]]
  [[ "${lines[6]}" == "result: failed (crop: CANCELLED exit 0:0)" ]]
  run -9 "${LTSFLOW_SCRIPTS}/status.sh" "${RUN_DIR}"
}

@test "a directory that is not a run is refused with exit 2" {
  run -2 "${LTSFLOW_SCRIPTS}/status.sh" "${BATS_TEST_TMPDIR}"
}
