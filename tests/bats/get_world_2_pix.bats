#!/usr/bin/env bats
# get_world_2_pix.sh: sky2xy in its container (the singularity shim runs the real sky2xy).

setup_file() {
  load test_helper
  export IMAGES="${BATS_FILE_TMPDIR}"
  fits make "${IMAGES}/image.fits" 200 150 150.0 2.0
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
  python3 -c 'from tests.fitsimages import make_no_wcs; make_no_wcs("nowcs.fits")'
  run -6 "${SCRIPT}" nowcs.fits 150.0 2.0 xy.txt
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

@test "--task-arguments runs every task in turn, and fails with the first failure's status" {
  mkdir tasks
  printf '%s\0' "${IMAGES}/image.fits" 150.0 2.0 "${BATS_TEST_TMPDIR}/task0.xy" >tasks/0.args
  printf '%s\0' "${IMAGES}/image.fits" 150.5 2.0 "${BATS_TEST_TMPDIR}/task1.xy" >tasks/1.args
  printf '%s\0' "${IMAGES}/image.fits" 150.001 2.0 "${BATS_TEST_TMPDIR}/task2.xy" >tasks/2.args
  run -5 "${SCRIPT}" --task-arguments tasks
  [[ "$(pixel_of task0.xy)" == "100.500 75.500" && ! -e task1.xy && -s task2.xy ]]
  [[ "${output}" == *"ran 3 task(s): 1 failed"* ]]
  # the module is loaded once for all three tasks
  [[ "$(shim_calls module | wc -l)" == 1 ]]
}

@test "a job-array task runs only its own arguments" {
  mkdir tasks
  printf '%s\0' "${IMAGES}/image.fits" 150.5 2.0 "${BATS_TEST_TMPDIR}/task0.xy" >tasks/0.args
  printf '%s\0' "${IMAGES}/image.fits" 150.0 2.0 "${BATS_TEST_TMPDIR}/task1.xy" >tasks/1.args
  SLURM_ARRAY_TASK_ID=1 run -0 "${SCRIPT}" --task-arguments tasks
  [[ "$(pixel_of task1.xy)" == "100.500 75.500" && ! -e task0.xy ]]
  SLURM_ARRAY_TASK_ID=7 run -4 "${SCRIPT}" --task-arguments tasks
  run -4 "${SCRIPT}" --task-arguments missing-dir
}

@test "the environment module is loaded" {
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" 150.0 2.0 xy.txt
  shim_calls module | grep -q '"argv": \["load", "singularity"\]'
}
