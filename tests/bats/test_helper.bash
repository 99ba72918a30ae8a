# Shared setup for the bats tests. pytest runs them (make test): it builds the
# default spec once and sets LTSFLOW_SCRIPTS and LTSFLOW_ROOT.
: "${LTSFLOW_SCRIPTS:?run the bats tests through pytest (make test), which builds the scripts}"
: "${LTSFLOW_ROOT:?run the bats tests through pytest (make test)}"

# use_shims: the fake Slurm/singularity/module commands first on PATH, with a fresh state.
use_shims() {
  export LTSFLOW_SHIM_STATE="${BATS_TEST_TMPDIR}/shim-state"
  mkdir -p "${LTSFLOW_SHIM_STATE}"
  PATH="${LTSFLOW_ROOT}/tests/shims:${PATH}"
  export PATH
}

# fits COMMAND ARGS...: make FITS images and ask astropy (tests/fitstool.py).
fits() {
  python3 -m tests.fitstool "$@"
}

# shim_calls TOOL: the recorded calls of TOOL, one JSON object per line.
shim_calls() {
  python3 -c 'import json, sys
for line in open(sys.argv[1]):
    call = json.loads(line)
    if call["tool"] == sys.argv[2]:
        print(json.dumps(call))' "${LTSFLOW_SHIM_STATE}/calls.jsonl" "$1"
}

# pixel_of XY_FILE: "X Y" from sky2xy's line "RA DEC SYSTEM -> X Y".
pixel_of() {
  local fields
  read -r -a fields <"$1"
  printf '%s %s\n' "${fields[4]}" "${fields[5]}"
}

# path_without TOOL...: a directory holding every command on PATH but TOOLs (use it as PATH).
path_without() {
  local dir="${BATS_TEST_TMPDIR}/path-without" entry entries tool
  mkdir -p "${dir}"
  IFS=: read -r -a entries <<<"${PATH}"
  for entry in "${entries[@]}"; do
    [[ -d "${entry}" ]] && ln -s "${entry}"/* "${dir}/" 2>/dev/null
  done
  for tool in "$@"; do
    rm -f "${dir:?}/${tool}"
  done
  printf '%s\n' "${dir}"
}

# submit_a_run: one message submitted to the fake Slurm from a fresh directory; sets RUN_DIR.
submit_a_run() {
  use_shims
  cd "${BATS_TEST_TMPDIR}" || return 1
  export MYSCRATCH="${BATS_TEST_TMPDIR}/scratch"
  export RCLONE_CONFIG_CEPH_ACCESS_KEY_ID=id RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY=secret
  printf '{"file": "lts-template/data/frame.fits", "ra": "0.1", "dec": "0.25"}\n' >message.json
  RUN_DIR="$("${LTSFLOW_SCRIPTS}/schedule.sh" message.json 2>/dev/null)"
  export RUN_DIR
}
