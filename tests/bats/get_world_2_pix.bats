#!/usr/bin/env bats
# get_world_2_pix.sh: sky2xy in its container (the singularity shim runs the real sky2xy).

setup_file() {
  load test_helper
  export IMAGES="${BATS_FILE_TMPDIR}"
  fits make "${IMAGES}/image.fits" 200 150 150.0 2.0
  fits make-no-wcs "${IMAGES}/nowcs.fits"
}

setup() {
  load test_helper
  use_shims
  SCRIPT="${LTSFLOW_SCRIPTS}/get_world_2_pix.sh"
  cd "${BATS_TEST_TMPDIR}" || return 1
}

@test "--help prints the usage and exits 0" {
  run -0 "${SCRIPT}" --help
  [[ "${lines[0]}" == "Usage: get_world_2_pix.sh IMAGE RA DEC XY_OUT" ]]
}

@test "writes sky2xy's line, with astropy's pixel, through the container" {
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" 150.001 2.0005 xy.txt
  read -r -a fields <xy.txt
  [[ "${#fields[@]}" == 6 && "${fields[3]}" == "->" ]]
  read -r x y < <(fits pixel "${IMAGES}/image.fits" 150.001 2.0005)
  python3 -c 'import sys; a, b, c, d = map(float, sys.argv[1:]); assert abs(a - c) < 0.01 and abs(b - d) < 0.01' \
    "${fields[4]}" "${fields[5]}" "${x}" "${y}"
  shim_calls singularity | grep -q '"image": "docker://curtinfop/wcstools"'
}

@test "--bind DIR binds DIR into the container; without it, an image the container cannot see fails" {
  # LTSFLOW_SHIM_NO_MOUNT=tmp: as on a cluster, the image's directory is not one of the default binds.
  LTSFLOW_SHIM_NO_MOUNT=tmp run -7 "${SCRIPT}" "${IMAGES}/image.fits" 150.001 2.0005 xy.txt
  [[ "${output}" == *"image.fits: No such file or directory"* && ! -e xy.txt ]]
  LTSFLOW_SHIM_NO_MOUNT=tmp run -0 "${SCRIPT}" --bind "${IMAGES}" --bind "${PWD}" "${IMAGES}/image.fits" 150.001 \
    2.0005 xy.txt
  shim_calls singularity | tail -1 | grep -qF "\"options\": [\"--bind\", \"${IMAGES}\", \"--bind\", \"${PWD}\"]"
}

@test "a directory to bind that is relative or holds \",\" or \":\" is refused with exit 2" {
  for directory in relative "${PWD}/a,b" "${PWD}/a:b"; do
    run -2 "${SCRIPT}" --bind "${directory}" "${IMAGES}/image.fits" 150.001 2.0005 xy.txt
    [[ "${output}" == *"a directory to bind is an absolute path without"* ]]
  done
  run -2 "${SCRIPT}" --bind
}

@test "sexagesimal RA (hours) and Dec give the same pixel as decimal degrees" {
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 decimal.txt
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" 10:00:00 +02:00:00 sexagesimal.txt
  [[ "$(pixel_of decimal.txt)" == "$(pixel_of sexagesimal.txt)" ]]
  [[ "$(pixel_of decimal.txt)" == "100.500 75.500" ]]
}

@test "an object off the image fails with exit 5 and writes nothing" {
  run -5 "${SCRIPT}" "${IMAGES}/image.fits" 150.5 2.0 xy.txt
  [[ "${output}" == *"off the image"* ]]
  [[ ! -e xy.txt ]]
}

@test "a point the projection cannot reach (offscale) fails with exit 5" {
  run -5 "${SCRIPT}" "${IMAGES}/image.fits" 330.0 -2.0 xy.txt
  [[ "${output}" == *"cannot be projected"* ]]
  [[ ! -e xy.txt ]]
}

@test "a file that is not FITS fails with exit 6, and one without WCS too" {
  printf 'not a fits file\n' >plain.fits
  run -6 "${SCRIPT}" plain.fits 150.0 2.0 xy.txt
  [[ "${output}" == *"not a FITS file"* ]]
  run -6 "${SCRIPT}" "${IMAGES}/nowcs.fits" 150.0 2.0 xy.txt
  [[ "${output}" == *"no WCS"* ]]
}

@test "a missing image fails with exit 4" {
  run -4 "${SCRIPT}" missing.fits 150.0 2.0 xy.txt
  [[ "${output}" == *"no such image"* ]]
}

@test "an image whose name has a comma and spaces works (sky2xy itself would crash)" {
  mkdir "odd, dir"
  cp "${IMAGES}/image.fits" "odd, dir/my image, v2.fits"
  run -0 "${SCRIPT}" "odd, dir/my image, v2.fits" 150.0 2.0 "odd, dir/x y.txt"
  [[ "$(pixel_of "odd, dir/x y.txt")" == "100.500 75.500" ]]
}

@test "bad RA or Dec is refused with exit 2 before sky2xy runs" {
  for value in "" nan inf 360 -1 1e3 "1;ls" 24:00:00 "\$(id)"; do
    run -2 "${SCRIPT}" "${IMAGES}/image.fits" "${value}" 2.0 xy.txt
    [[ "${output}" == *"RA"* ]]
  done
  for value in 90.5 -91 "+90:00:01" nan "2 3"; do
    run -2 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 "${value}" xy.txt
    [[ "${output}" == *"Dec"* ]]
  done
  [[ "$(shim_calls singularity | wc -l)" == 0 ]]
}

@test "a missing container runtime fails with exit 3" {
  PATH="$(path_without singularity)" run -3 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 xy.txt
  [[ "${output}" == *"singularity not found"* ]]
}

@test "a tool missing inside the container fails with exit 3" {
  LTSFLOW_SHIM_MISSING=sky2xy run -3 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 xy.txt
  [[ "${output}" == *"sky2xy not found in the container"* ]]
}

# batch_line OUTCOME ARGS...: one object's line of a batch file, tab-separated.
batch_line() {
  local IFS=$'\t'
  printf '%s\n' "$*"
}

@test "--batch runs sky2xy once per image; a failed object is recorded and the others go on" {
  mkdir failed
  cp "${IMAGES}/image.fits" second.fits
  {
    batch_line failed/0 "${IMAGES}/image.fits" 150.0 2.0 "${BATS_TEST_TMPDIR}/0.xy"
    batch_line failed/1 "${IMAGES}/image.fits" 150.5 2.0 "${BATS_TEST_TMPDIR}/1.xy"
    batch_line failed/2 second.fits 150.001 2.0 "${BATS_TEST_TMPDIR}/2.xy"
    batch_line failed/3 "${IMAGES}/image.fits" 10:00:00 +02:00:00 "${BATS_TEST_TMPDIR}/3.xy"
    batch_line failed/4 missing.fits 150.0 2.0 "${BATS_TEST_TMPDIR}/4.xy"
  } >batch.tsv
  run -0 "${SCRIPT}" --batch batch.tsv
  [[ "$(pixel_of 0.xy)" == "100.500 75.500" && "$(pixel_of 3.xy)" == "100.500 75.500" && -s 2.xy ]]
  [[ ! -e 1.xy && ! -e 4.xy && ! -e failed/0 && ! -e failed/2 && ! -e failed/3 ]]
  [[ "$(cut -f1,2 failed/1)" == "5"$'\t'"get_world_2_pix.sh" && "$(cut -f3 failed/1)" == *"off the image"* ]]
  [[ "$(cut -f1 failed/4)" == 4 && "$(cut -f3 failed/4)" == *"no such image"* ]]
  [[ "${output}" == *"5 object(s) in 3 group(s): 2 failed"* ]]
  # one sky2xy per image that exists, and the module loaded once
  [[ "$(shim_calls singularity | wc -l)" == 2 && "$(shim_calls module | wc -l)" == 1 ]]
}

@test "--batch leaves out objects that failed in an earlier step" {
  mkdir failed
  printf '4\tsync.sh\tnot in the bucket\n' >failed/0
  batch_line failed/0 "${IMAGES}/image.fits" 150.0 2.0 "${BATS_TEST_TMPDIR}/0.xy" >batch.tsv
  run -0 "${SCRIPT}" --batch batch.tsv
  [[ ! -e 0.xy && "$(shim_calls singularity | wc -l)" == 0 ]]
  run -4 "${SCRIPT}" --batch missing.tsv
}

@test "--batch: an image without WCS fails each of its objects with exit 6" {
  mkdir failed
  {
    batch_line failed/0 "${IMAGES}/nowcs.fits" 150.0 2.0 "${BATS_TEST_TMPDIR}/0.xy"
    batch_line failed/1 "${IMAGES}/nowcs.fits" 150.0 2.1 "${BATS_TEST_TMPDIR}/1.xy"
  } >batch.tsv
  run -0 "${SCRIPT}" --batch batch.tsv
  [[ "$(cut -f1 failed/0)" == 6 && "$(cut -f1 failed/1)" == 6 && "$(cut -f3 failed/1)" == *"no WCS"* ]]
}

@test "the environment module is loaded" {
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 xy.txt
  shim_calls module | grep -q '"argv": \["load", "singularity"\]'
}

@test "without a module command, the module system is started from MODULESHOME" {
  mkdir -p modules/init
  printf 'module() { printf "%%s\\n" "$*" >>"%s/module.calls"; }\n' "${BATS_TEST_TMPDIR}" >modules/init/bash
  MODULESHOME="${PWD}/modules" PATH="$(path_without module)" run -0 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 xy.txt
  [[ "$(cat module.calls)" == "load singularity" ]]
  PATH="$(path_without module)" run -0 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 xy.txt
  [[ "${output}" == *'no "module" command here'* ]]
}
