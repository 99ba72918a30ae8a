#!/usr/bin/env bats
# schedule.sh against the fake Slurm: what it submits, what it refuses, what it cleans up.

setup() {
  load test_helper
  use_shims
  SCRIPT="${LTSFLOW_SCRIPTS}/schedule.sh"
  cd "${BATS_TEST_TMPDIR}" || return 1
  export MYSCRATCH="${BATS_TEST_TMPDIR}/scratch"
  export RCLONE_CONFIG_CEPH_ACCESS_KEY_ID=id-for-bats RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY=secret-for-bats
  printf '{"file": "lts-template/data/frame.fits", "ra": "0.1", "dec": "0.25"}\n' >message.json
}

@test "--help prints the usage and the exit codes" {
  run -0 "${SCRIPT}" --help
  [[ "${lines[0]}" == "Usage: schedule.sh [--dry-run] MESSAGES.json..." ]]
  [[ "${output}" == *"8  a submission failed; every job already submitted was cancelled"* ]]
}

@test "runs however it is invoked: bash schedule.sh in its directory, or through a symlink" {
  (cd "${LTSFLOW_SCRIPTS}" && bash schedule.sh --help >/dev/null)
  (cd "${LTSFLOW_SCRIPTS}" && bash schedule.sh --dry-run "${BATS_TEST_TMPDIR}/message.json" >"${BATS_TEST_TMPDIR}/here.txt")
  ln -s "${SCRIPT}" linked.sh
  run -0 --separate-stderr ./linked.sh --dry-run message.json
  [[ "${output}" == *"${LTSFLOW_SCRIPTS}/sync.sh"* && "${output}" == "$(cat here.txt)" ]]
}

@test "submits four jobs, each named with its cluster, and prints the run directory" {
  run -0 --separate-stderr "${SCRIPT}" message.json
  [[ -f "${output}/jobs.tsv" ]]
  [[ "$(shim_calls sbatch | wc -l)" == 4 ]]
  [[ "$(shim_calls sbatch | grep -c -- '--clusters=')" == 4 ]]
  [[ "$(cut -f1 "${output}/jobs.tsv" | paste -sd' ')" == "step sync_in world_to_pixel crop sync_out" ]]
}

@test "a dry run submits nothing and writes nothing" {
  run -0 "${SCRIPT}" --dry-run message.json
  [[ "$(shim_calls sbatch | wc -l)" == 0 ]]
  [[ ! -e scratch ]]
}

@test "an object off the sky is refused before anything is submitted" {
  printf '{"file": "lts-template/data/frame.fits", "ra": "400", "dec": "0.25"}\n' >bad.json
  run -2 "${SCRIPT}" message.json bad.json
  [[ "${output}" == *'field "ra"'* ]]
  [[ "$(shim_calls sbatch | wc -l)" == 0 ]]
}

@test "sbatch failing at the third job cancels the first two, and the third by name" {
  # "Unable to contact slurm controller" is retried: it fails on every one of the 5 attempts here
  LTSFLOW_SUBMIT_DELAY=0 LTSFLOW_SHIM_SBATCH_FAIL_AT=3,4,5,6,7 run -8 "${SCRIPT}" message.json
  [[ "$(shim_calls scancel | grep -vc -- '--name=')" == 2 ]]
  [[ "$(shim_calls scancel | grep -c -- '--name=lts-template-crop-')" == 1 ]]
  run -0 "${LTSFLOW_ROOT}/tests/shims/squeue" --clusters=all --noheader
  [[ "${output}" != *lts-template* ]]
}

@test "credentials travel in the environment: never in argv or in the run directory" {
  run -0 --separate-stderr "${SCRIPT}" message.json
  local run_dir="${output}"
  run -1 grep -rq secret-for-bats "${run_dir}" "${LTSFLOW_SHIM_STATE}/calls.jsonl"
  shim_calls sbatch | head -1 | grep -q '"environment": \[[^]]*"RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY"'
  shim_calls sbatch | head -1 | grep -q '"--export=ALL"'
}

@test "unknown options and missing input are usage errors" {
  run -2 "${SCRIPT}" --frobnicate message.json
  run -2 "${SCRIPT}"
  run -2 "${SCRIPT}" no-such-file.json
}
