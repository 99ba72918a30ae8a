#!/usr/bin/env bats
# crop_image_around_pixels.sh: astcrop in its container, checked against astropy's Cutout2D.

setup_file() {
  load test_helper
  export IMAGES="${BATS_FILE_TMPDIR}"
  # 200x150, exact zeros in the block x 3..6, y 3..5 (tests/fitsimages.py).
  fits make "${IMAGES}/image.fits" 200 150 150.0 2.0
}

setup() {
  load test_helper
  use_shims
  SCRIPT="${LTSFLOW_SCRIPTS}/crop_image_around_pixels.sh"
  cd "${BATS_TEST_TMPDIR}" || return 1
}

xy() {
  printf '150.0 2.0 J2000 -> %s %s\n' "$1" "$2" >xy.txt
}

@test "--help prints the usage and exits 0" {
  run -0 "${SCRIPT}" --help
  [[ "${lines[0]}" == "Usage: crop_image_around_pixels.sh IMAGE CROP_OUT XY_FILE LABEL WIDTH" ]]
}

@test "the crop equals astropy's cutout at the same centre, through the container" {
  xy 100.500 75.500
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" out/crop.fits xy.txt galaxy_1 21
  run -0 fits same-crop "${IMAGES}/image.fits" out/crop.fits 100.500 75.500 21
  [[ "${output}" == "equal 21x21 zeros=0" ]]
  shim_calls singularity | grep -q '"image": "docker://curtinfop/gnuastro"'
}

@test "an even width gives width+1, as astcrop does" {
  xy 40.2 30.7
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt galaxy_1 20
  run -0 fits same-crop "${IMAGES}/image.fits" crop.fits 40.2 30.7 20
  [[ "${output}" == "equal 21x21 "* ]]
}

@test "a crop near the edge keeps exact zeros as zeros and pads with NaN" {
  xy 4 4
  run -0 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt edge 9
  run -0 fits same-crop "${IMAGES}/image.fits" crop.fits 4 4 9
  [[ "${output}" == "equal 9x9 zeros=12" ]]
}

@test "a crop that misses the image fails with exit 5 and leaves the old output alone" {
  printf 'previous\n' >crop.fits
  xy 5000.0 5000.0
  run -5 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt galaxy_1 20
  [[ "${output}" == *"does not overlap"* ]]
  [[ "$(cat crop.fits)" == previous ]]
}

@test "an off-image line from sky2xy fails with exit 5" {
  printf '150.5 2.0 J2000 -> 4600.000 75.500 (off image)\n' >xy.txt
  run -5 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt galaxy_1 20
  [[ ! -e crop.fits ]]
}

@test "a bad width is refused with exit 2" {
  xy 100 75
  for width in 0 -1 abc 2.5 "" "20;ls" 1000000; do
    run -2 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt galaxy_1 "${width}"
    [[ "${output}" == *"WIDTH"* ]]
  done
  [[ ! -e crop.fits ]]
}

@test "a bad label is refused with exit 2" {
  xy 100 75
  run -2 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt "a b" 20
  run -2 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt "-x" 20
}

@test "missing coordinates fail with exit 4, garbage with exit 2" {
  run -4 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits missing.txt galaxy_1 20
  printf 'nonsense\n' >xy.txt
  run -2 "${SCRIPT}" "${IMAGES}/image.fits" crop.fits xy.txt galaxy_1 20
}

@test "a missing image fails with exit 4" {
  xy 100 75
  run -4 "${SCRIPT}" missing.fits crop.fits xy.txt galaxy_1 20
}

@test "odd characters in the paths are passed through exactly" {
  mkdir "a, b \$(x)"
  cp "${IMAGES}/image.fits" "a, b \$(x)/it's.fits"
  xy 100.5 75.5
  run -0 "${SCRIPT}" "a, b \$(x)/it's.fits" "a, b \$(x)/out dir/crop 'q'.fits" xy.txt galaxy_1 5
  [[ -s "a, b \$(x)/out dir/crop 'q'.fits" ]]
}

@test "--task-arguments runs the tasks written by schedule.sh" {
  mkdir tasks
  xy 100.5 75.5
  printf '%s\0' "${IMAGES}/image.fits" "${BATS_TEST_TMPDIR}/task.fits" xy.txt obj 11 >tasks/0.args
  run -0 "${SCRIPT}" --task-arguments tasks
  run -0 fits same-crop "${IMAGES}/image.fits" task.fits 100.5 75.5 11
}
