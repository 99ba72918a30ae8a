#!/usr/bin/env bats
# sync.sh: rclone copy of exactly the listed files, checked on arrival. The remote
# "ceph" is pointed at the local filesystem here (RCLONE_CONFIG_CEPH_TYPE=local);
# tests/test_end_to_end.py runs it against a real S3 server.

setup() {
  load test_helper
  use_shims
  SCRIPT="${LTSFLOW_SCRIPTS}/sync.sh"
  cd "${BATS_TEST_TMPDIR}" || return 1
  export RCLONE_CONFIG_CEPH_TYPE=local
  export RCLONE_CONFIG_CEPH_ACCESS_KEY_ID=unused-id
  export RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY=unused-secret
  export RCLONE_CONFIG=/dev/null
  mkdir -p bucket/data scratch
  printf 'a\n' >bucket/data/a.fits
  printf 'b\n' >bucket/data/b.fits
  printf 'c\n' >"bucket/data/#odd name 'q' \$(x).fits"
}

@test "--help prints the usage and exits 0" {
  run -0 "${SCRIPT}" --help
  [[ "${lines[0]}" == "Usage: sync.sh [--skip-missing] FROM TO [LIST]" ]]
}

@test "copies exactly the listed files, relative to FROM" {
  printf 'data/a.fits\n' >list
  run -0 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ -f scratch/data/a.fits && ! -e scratch/data/b.fits ]]
  shim_calls module | grep -q '"argv": \["load", "rclone"\]'
}

@test "names with spaces, quotes and a leading # are copied exactly" {
  printf '%s\n' "data/#odd name 'q' \$(x).fits" >list
  run -0 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ "$(cat "scratch/data/#odd name 'q' \$(x).fits")" == c ]]
}

@test "a listed file missing at the remote fails with exit 4, naming it" {
  printf 'data/a.fits\ndata/missing.fits\n' >list
  run -4 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ "${output}" == *"no such file: ceph:${PWD}/bucket/data/missing.fits"* ]]
}

@test "--skip-missing copies what is there and logs what is not (its objects fail later, each on its own)" {
  printf 'data/a.fits\ndata/missing.fits\n' >list
  run -0 "${SCRIPT}" --skip-missing "ceph:${PWD}/bucket" scratch list
  [[ -f scratch/data/a.fits && ! -e scratch/data/missing.fits ]]
  [[ "${output}" == *"not copied, skipped: data/missing.fits"* && "${output}" == *"copied 1 file(s)"* ]]
}

@test "--results uploads the results and the crops made, and fails if none was made" {
  mkdir -p run/failed run/out remote
  printf 'bucket/results/run.json\n' >run/results.key
  {
    printf 'index\tfile\tra\tdec\tlabel\tcrop_key\tsources...\n'
    printf '0\tbucket/data/f.fits\t1\t2\ta\tbucket/data/f_a_crop.fits\tm.json:1\n'
    printf '1\tbucket/data/f.fits\t3\t4\tb\tbucket/data/f_b_crop.fits\tm.json:2\tm.json:3\n'
  } >run/objects.tsv
  printf 'crop\n' >run/out/0.fits
  printf '5\tget_world_2_pix.sh\toff the image "x"\n' >run/failed/1
  run -0 "${SCRIPT}" --results run run/out "ceph:${PWD}/remote"
  [[ -f remote/bucket/data/f_a_crop.fits && -f remote/bucket/results/run.json && ! -e remote/bucket/data/f_b_crop.fits ]]
  python3 -c 'import json, sys
results = json.load(open(sys.argv[1]))
assert (results["run"], results["objects"], results["succeeded"], results["failed"]) == ("run", 2, 1, 1), results
first, second = results["results"]
assert first == {"index": 0, "messages": ["m.json:1"], "file": "bucket/data/f.fits", "ra": "1", "dec": "2",
                 "label": "a", "key": "bucket/data/f_a_crop.fits", "error": None}, first
assert second["messages"] == ["m.json:2", "m.json:3"] and second["key"] is None, second
assert second["error"] == {"code": 5, "step": "get_world_2_pix.sh", "message": "off the image \"x\""}, second
' remote/bucket/results/run.json
  rm run/out/0.fits remote/bucket/results/run.json
  run -7 "${SCRIPT}" --results run run/out "ceph:${PWD}/remote"
  [[ -f remote/bucket/results/run.json && "$(cut -f1,3 run/failed/0)" == "7"$'\t'"no crop was made" ]]
}

@test "--results uploads each file to its key, and fails with exit 7 if any upload fails" {
  mkdir -p run/failed run/out remote/bucket
  printf 'bucket/results/run.json\n' >run/results.key
  {
    printf 'index\tfile\tra\tdec\tlabel\tcrop_key\tsources...\n'
    printf '0\tbucket/data/f.fits\t1\t2\ta\tbucket/data/f_a_crop.fits\tm.json:1\n'
    printf '1\tbucket/other/f.fits\t3\t4\tb\tbucket/other/f_b_crop.fits\tm.json:2\n'
  } >run/objects.tsv
  printf 'crop a\n' >run/out/0.fits
  printf 'crop b\n' >run/out/1.fits
  printf 'not a directory\n' >remote/bucket/other
  run -7 "${SCRIPT}" --results run run/out "ceph:${PWD}/remote"
  [[ "${output}" == *"could not upload 1 of the 3 file(s)"* ]]
  [[ "$(cat remote/bucket/data/f_a_crop.fits)" == "crop a" && -f remote/bucket/results/run.json ]]
  rm remote/bucket/other
  run -0 "${SCRIPT}" --results run run/out "ceph:${PWD}/remote"
  [[ "$(cat remote/bucket/other/f_b_crop.fits)" == "crop b" ]]
}

@test "a listed file missing locally fails with exit 4 before anything is copied" {
  printf 'data/a.fits\ndata/missing.fits\n' >list
  mkdir remote
  run -4 "${SCRIPT}" bucket "ceph:${PWD}/remote" list
  [[ "${output}" == *"no such file: bucket/data/missing.fits"* ]]
  [[ -z "$(ls -A remote)" ]]
}

@test "uploads to the remote and checks every listed file arrived" {
  printf 'data/a.fits\ndata/b.fits\n' >list
  mkdir remote
  run -0 "${SCRIPT}" bucket "ceph:${PWD}/remote" list
  [[ -f remote/data/a.fits && -f remote/data/b.fits ]]
}

@test "never deletes: other files at the destination stay" {
  mkdir -p remote/data
  printf 'keep\n' >remote/data/keep.fits
  printf 'data/a.fits\n' >list
  run -0 "${SCRIPT}" bucket "ceph:${PWD}/remote" list
  [[ "$(cat remote/data/keep.fits)" == keep && -f remote/data/a.fits ]]
}

@test "absolute paths and .. in the list are refused with exit 2 (the original's silent no-op)" {
  printf '%s\n' "${PWD}/bucket/data/a.fits" >list
  run -2 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ "${output}" == *"must be a path relative to FROM"* ]]
  printf 'data/../../etc/passwd\n' >list
  run -2 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ ! -e scratch/data ]]
}

@test "an empty list is refused with exit 2" {
  : >list
  run -2 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ "${output}" == *"lists no files"* ]]
}

@test "a credential that is not set fails with exit 2, naming the variable" {
  unset RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY
  printf 'data/a.fits\n' >list
  run -2 "${SCRIPT}" "ceph:${PWD}/bucket" scratch list
  [[ "${output}" == *"RCLONE_CONFIG_CEPH_SECRET_ACCESS_KEY is not set"* ]]
}

@test "the spec's remote settings apply unless the environment overrides them" {
  unset RCLONE_CONFIG_CEPH_TYPE
  printf 'data/a.fits\n' >list
  # The spec's remote is S3 at nimbus.pawsey.org.au: unreachable here, so rclone fails (exit 7).
  RCLONE_CONFIG_CEPH_ENDPOINT=http://127.0.0.1:9 RCLONE_RETRIES=1 RCLONE_LOW_LEVEL_RETRIES=1 \
    run -7 "${SCRIPT}" "ceph:bucket" scratch list
  [[ "${output}" == *"rclone copy failed"* ]]
}

@test "rclone missing fails with exit 3" {
  PATH="$(path_without rclone)" run -3 "${SCRIPT}" "ceph:${PWD}/bucket" scratch
  [[ "${output}" == *"rclone not found"* ]]
}

@test "wrong arguments fail with exit 2" {
  run -2 "${SCRIPT}" only-one
  run -2 "${SCRIPT}" -rf scratch
}
