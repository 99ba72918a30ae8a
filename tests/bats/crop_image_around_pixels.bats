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

# batch_line OUTCOME ARGS...: one object's line of a batch file, tab-separated.
batch_line() {
  local IFS=$'\t'
  printf '%s\n' "$*"
}

@test "--batch cuts every crop of an image in one astcrop run, each equal to astropy's cutout" {
  mkdir failed
  printf '150.0 2.0 J2000 -> 100.5 75.5\n' >0.xy
  printf '150.0 2.0 J2000 -> 3.2 4.9\n' >1.xy
  printf '150.0 2.0 J2000 -> 5000 5000\n' >2.xy
  printf '150.0 2.0 J2000 -> 199.6 149.7\n' >3.xy
  printf '150.0 2.0 J2000 -> 1.0 1.0 (off image)\n' >4.xy
  {
    for n in 0 1 2 3 4; do
      batch_line "failed/${n}" "${IMAGES}/image.fits" "out/${n}.fits" "${n}.xy" "obj${n}" 11
    done
    batch_line failed/5 "${IMAGES}/image.fits" out/5.fits 0.xy obj5 20
  } >batch.tsv
  run -0 "${SCRIPT}" --batch batch.tsv
  run -0 fits same-crop "${IMAGES}/image.fits" out/0.fits 100.5 75.5 11 out/1.fits 3.2 4.9 11 \
    out/3.fits 199.6 149.7 11 out/5.fits 100.5 75.5 20
  [[ ! -e out/2.fits && "$(cut -f1 failed/2)" == 5 && "$(cut -f3 failed/2)" == *"does not overlap"* ]]
  [[ ! -e out/4.fits && "$(cut -f1 failed/4)" == 5 && "$(cut -f3 failed/4)" == *"off the image"* ]]
  [[ ! -e failed/0 && ! -e failed/1 && ! -e failed/3 && ! -e failed/5 ]]
  # one astcrop per width: 11 and 20
  [[ "$(shim_calls singularity | wc -l)" == 2 ]]
}

@test "--batch: crops bound for different directories, or under odd names, are each moved on their own" {
  mkdir failed
  printf '150.0 2.0 J2000 -> 100.5 75.5\n' >0.xy
  printf '150.0 2.0 J2000 -> 3.2 4.9\n' >1.xy
  printf '150.0 2.0 J2000 -> 199.6 149.7\n' >2.xy
  {
    batch_line failed/0 "${IMAGES}/image.fits" "out/a/0.fits" 0.xy obj0 11
    batch_line failed/1 "${IMAGES}/image.fits" "out/b/one crop.fits" 1.xy obj1 11
    batch_line failed/2 "${IMAGES}/image.fits" "out/a/2.fits" 2.xy obj2 11
  } >batch.tsv
  run -0 "${SCRIPT}" --batch batch.tsv
  run -0 fits same-crop "${IMAGES}/image.fits" out/a/0.fits 100.5 75.5 11 "out/b/one crop.fits" 3.2 4.9 11 \
    out/a/2.fits 199.6 149.7 11
  [[ ! -e failed/0 && ! -e failed/1 && ! -e failed/2 && "$(shim_calls singularity | wc -l)" == 1 ]]
  [[ -z "$(find out -name '.astcrop.*')" ]]
}

@test "astcrop crashing (death by a signal) is tried once more" {
  mkdir bin
  printf '#!/bin/bash\nif [[ ! -e %q/crashed ]]; then : >%q/crashed; kill -SEGV $$; fi\nexec %q "$@"\n' \
    "${BATS_TEST_TMPDIR}" "${BATS_TEST_TMPDIR}" "$(command -v astcrop)" >bin/astcrop
  chmod +x bin/astcrop
  xy 100.5 75.5
  PATH="${PWD}/bin:${PATH}" run -0 "${SCRIPT}" "${IMAGES}/image.fits" out/crop.fits xy.txt galaxy_1 21
  [[ "${output}" == *"astcrop crashed (status 139)"*"trying once more"* ]]
  run -0 fits same-crop "${IMAGES}/image.fits" out/crop.fits 100.5 75.5 21
}
