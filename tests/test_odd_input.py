"""Odd input to schedule.sh: valid values it must take, and values it must refuse at once, with a
short message, instead of failing later (in rclone, in S3, in a crop's key).

The oracles are Python's: decimal.Decimal for numbers, unicodedata for invisible characters, and
the S3 bucket naming rules (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)
written out as a table below, which tests/test_validate.py checks against the spec too.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import subprocess
import unicodedata
from decimal import Decimal
from pathlib import Path

import pytest

from tests.chain import crop_key, normal_angle
from tests.test_schedule_dry_run import comments, run_dry

# (bucket name, valid): every rule of the S3 general purpose bucket naming rules, both sides.
BUCKETS = [
    ("abc", True), ("a.b-c", True), ("a" * 63, True), ("1bucket", True), ("my.bucket.name", True),
    ("192.168.1.1x", True), ("xn-abc", True), ("sthree", True), ("s3alias", True), ("a-s3aliasx", True),
    ("ab", False), ("a" * 64, False), ("ABC", False), ("a_b", False), ("-ab", False), ("ab-", False),
    (".ab", False), ("ab.", False), ("a..b", False), ("192.168.1.1", False), ("10.0.0.256", False),
    ("xn--abc", False), ("sthree-x", False), ("sthree-configurator-x", False), ("amzn-s3-demo-x", False),
    ("abc-s3alias", False), ("abc--ol-s3", False), ("abc.mrap", False), ("abc--x-s3", False),
    ("abc--table-s3", False),
]

# Code points that look like nothing, or move text around, in a key: C1 controls, format
# characters (bidirectional overrides and isolates, zero-width ones, the byte order mark, tags),
# and the line and paragraph separators.
INVISIBLE = [c for c in range(0x80, 0x110000)
             if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp") and not 0xD800 <= c <= 0xDFFF]
# Format characters of Unicode 15 (Egyptian hieroglyph controls), after this Python's Unicode
# 14: refused too, and left out of the characters that must be taken.
NEWER = set(range(0x13439, 0x13440))


def write_messages(path: Path, messages: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(m, ensure_ascii=False) + "\n" for m in messages), encoding="utf-8")
    return path


def crop_tasks(output: str) -> list[list[str]]:
    return [shlex.split(line.split(":", 1)[1]) for line in comments(output) if line.startswith("# crop task ")]


def crop_keys(output: str) -> list[str]:
    return [shlex.split(line.split(":", 1)[1])[0] for line in comments(output) if line.startswith("# crop key ")]


# ---------------------------------------------------------------- numbers

def decimal_value(text: str) -> Decimal | None:
    """The value of a decimal RA or Dec as schedule.sh reads it: what Python's float() reads, but
    exactly, and without spaces, underscores, nan or inf."""
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        return None
    return Decimal(text)


RA_VALUES = ["9e1", "9E1", "90e0", "900e-1", "0.09e3", ".9e2", "+9e+1", "-0.0", "-0", "-0e5", "5.", ".5", "0010",
             "000359.5", "3.595e2", "1e-20", "0e999999999999", "359.99999999e0", "1.23456789012345e2", "359",
             "359.9999999994", "-0.0000000000001", "360", "3.6e2", "36e1", "1e3", "1e999999999999", "-1", "-1e-20",
             ".", "5.e", "e5", "1e", "+", "-", "1.2.3", "0x10", "nan", "inf", "1_0", " 1", "1 ", "5e+", "١٢"]
DEC_VALUES = ["9e1", "-9e1", "-90", "90.000", "9.0e1", "-0.0", "0010", "-.5", "+5.", "1e-30", "-1.5e-3", "89.9999999999",
              "90.0000000001", "9.1e1", "-90.5", "1e2", "-1e999999999999", "1e999999999999", ".e1", "", "9e1.0"]


def test_decimal_ra_and_dec_in_any_json_number_form_are_taken_exactly(scripts_dir: Path, tmp_path: Path) -> None:
    cases = [("ra", value) for value in RA_VALUES] + [("dec", value) for value in DEC_VALUES]
    for number, (field, value) in enumerate(cases):
        fields = {"file": "bucket/a.fits", "ra": "10", "dec": "-5", field: value}
        result = run_dry(scripts_dir, write_messages(tmp_path / f"m{number}.json", [fields]))
        parsed = decimal_value(value)
        low, high = (Decimal(0), Decimal(360)) if field == "ra" else (Decimal(-90), Decimal(90))
        valid = parsed is not None and low <= parsed and (parsed < high if field == "ra" else parsed <= high)
        if valid:
            assert result.returncode == 0, (field, value, result.stderr)
            assert crop_keys(result.stdout) == [crop_key("bucket/a.fits", "galaxy_1", fields["ra"], fields["dec"])], \
                (field, value)
        else:
            assert result.returncode == 2, (field, value, result.stderr)
            assert f'field "{field}"' in result.stderr, (field, value, result.stderr)


def random_numbers(count: int) -> list[str]:
    """Seeded strings near the number forms: signs, leading zeros, points, exponents, odd characters."""
    generator = random.Random(20261201)
    texts = []
    for _ in range(count):
        sign = generator.choice(["", "", "+", "-"])
        whole = generator.choice(["", "0", "00", "3", "35", "359", "360", "90", "89", "0359", "1000", "12345"])
        point = generator.choice(["", ".", "."])
        fraction = generator.choice(["", "0", "5", "9999999995", "9999999994", "0000000000005", "123456789012345"])
        exponent = generator.choice(["", "", "e0", "E1", "e-1", "e+2", "E-13", "e-14", "e3", "e-0000002", "E+0"])
        text = sign + whole + point + fraction + exponent
        if generator.random() < 0.05:
            at = generator.randrange(len(text) + 1)
            text = text[:at] + generator.choice([" ", "e", ".", "x", "_", "-", ":"]) + text[at:]
        texts.append(text)
    return texts


def test_the_checks_and_normal_forms_agree_with_decimal(scripts_dir: Path, tmp_path: Path) -> None:
    """valid_ra/valid_dec and normal_ra/normal_dec of read_messages.sh (which reads schedule.sh's input),
    in one bash, on many numbers."""
    values = sorted(set(RA_VALUES + DEC_VALUES + random_numbers(3000)) - {""})
    reader = (scripts_dir / "read_messages.sh").read_text()
    harness = tmp_path / "harness.sh"
    harness.write_text(reader.removesuffix('main "$@"\n') + 'while IFS= read -r value; do\n'
                       '  valid_ra "${value}"; ra="${VALID}"; [[ "${ra}" != true ]] || { normal_ra "${value}"; ra="${DEGREES}"; }\n'
                       '  valid_dec "${value}"; dec="${VALID}"; [[ "${dec}" != true ]] || { normal_dec "${value}"; dec="${DEGREES}"; }\n'
                       '  printf "%s %s\\n" "${ra}" "${dec}"\n'
                       'done\n')
    result = subprocess.run(["bash", str(harness)], input="".join(v + "\n" for v in values), capture_output=True,
                            text=True, check=True, env={"PATH": os.environ["PATH"]})
    expected = []
    for value in values:
        parsed = decimal_value(value)
        ra = normal_angle(value, hours=True) if parsed is not None and 0 <= parsed < 360 else "false"
        dec = normal_angle(value, hours=False) if parsed is not None and -90 <= parsed <= 90 else "false"
        expected.append(f"{ra} {dec}")
    got = result.stdout.splitlines()
    assert len(got) == len(values)
    assert [(v, g) for v, g, e in zip(values, got, expected) if g != e] == []
    assert sum(e != "false false" for e in expected) > 300


def test_a_json_number_ra_and_dec_with_an_exponent_are_taken(scripts_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    path.write_text('{"file": "bucket/a.fits", "ra": 9e1, "dec": -0.0}\n{"file": "bucket/a.fits", "ra": 1.5E2, "dec": 2E-1}\n')
    result = run_dry(scripts_dir, path)
    assert result.returncode == 0, result.stderr
    assert crop_keys(result.stdout) == [crop_key("bucket/a.fits", "galaxy_1", "90", "0"),
                                        crop_key("bucket/a.fits", "galaxy_1", "150", "0.2")]


def test_an_ra_that_rounds_to_360_is_ra_zero(scripts_dir: Path, tmp_path: Path) -> None:
    messages = [{"file": "bucket/a.fits", "ra": ra, "dec": 1} for ra in
                ("359.9999999995", "23:59:59.99999999999", "0", "359.9999999994")]
    result = run_dry(scripts_dir, write_messages(tmp_path / "m.json", messages))
    assert result.returncode == 0, result.stderr
    keys = crop_keys(result.stdout)
    zero = crop_key("bucket/a.fits", "galaxy_1", "0", "1")
    # the first three are one position, done once; the last is not
    assert keys == [zero, crop_key("bucket/a.fits", "galaxy_1", "359.999999999", "1")]
    assert "asks for the same crop as" in result.stderr


def test_the_step_scripts_take_the_same_forms(scripts_dir: Path) -> None:
    # get_world_2_pix.sh checks its RA and Dec with the same functions: a form schedule.sh takes
    # must not be refused there. Its usage error (no image) comes after the checks.
    for ra, dec in (("9e1", "-0.0"), (".5", "5."), ("0010", "1E1")):
        result = subprocess.run(["bash", str(scripts_dir / "get_world_2_pix.sh"), "/nonexistent.fits", ra, dec, "/tmp/x.xy"],
                                capture_output=True, text=True, check=False, env={"PATH": os.environ["PATH"]})
        assert "must be decimal degrees" not in result.stderr, (ra, dec, result.stderr)


# ---------------------------------------------------------------- keys and buckets

@pytest.mark.parametrize(("bucket", "valid"), BUCKETS)
def test_a_bucket_name_follows_the_s3_rules(scripts_dir: Path, tmp_path: Path, bucket: str, valid: bool) -> None:
    result = run_dry(scripts_dir, write_messages(tmp_path / "m.json", [{"file": f"{bucket}/a.fits", "ra": 1, "dec": 1}]))
    if valid:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2, result.stderr
        assert 'field "file"' in result.stderr and "bucket name" in result.stderr, result.stderr


def test_invisible_and_c1_characters_in_a_key_are_refused(scripts_dir: Path, tmp_path: Path) -> None:
    invisible = set(INVISIBLE)
    # every one of them, and the code points either side of each run, and a sample of the rest
    generator = random.Random(9)
    sample = [c for c in range(0xA0, 0x110000) if c not in invisible and not 0xD800 <= c <= 0xDFFF and c != 0x201B]
    around = {c + d for c in INVISIBLE for d in (-1, 1)} - invisible - set(range(0xD800, 0xE000)) - set(range(0x80))
    others = sorted((around - {0x201B, 0x110000} - NEWER) | set(generator.sample(sample, 500)) - NEWER)
    messages = [{"file": f"bucket/x{chr(c)}y.fits", "ra": 1, "dec": 1} for c in INVISIBLE + others]
    paths = [write_messages(tmp_path / f"m{index}.json", [m]) for index, m in enumerate(messages)]
    # one run per file would take long: each is read by its own run of read_input, in one bash
    refused = refusals(scripts_dir, tmp_path, paths)
    assert [hex(c) for c, r in zip(INVISIBLE, refused) if not r] == []
    assert [hex(c) for c, r in zip(others, refused[len(INVISIBLE):]) if r] == []


def refusals(scripts_dir: Path, tmp_path: Path, paths: list[Path]) -> list[bool]:
    """For each message file, whether read_input (read_messages.sh's, for schedule.sh) refuses it because of
    its "file"."""
    reader = (scripts_dir / "read_messages.sh").read_text()
    harness = tmp_path / "harness.sh"
    harness.write_text(reader.removesuffix('main "$@"\n') + 'for input in "$@"; do\n'
                       '  if (read_input "${input}") 2>/dev/null; then echo accepted; else echo refused; fi\n'
                       'done\n')
    result = subprocess.run(["bash", str(harness), *map(str, paths)], capture_output=True, text=True, check=True,
                            env={"PATH": os.environ["PATH"]})
    return [line == "refused" for line in result.stdout.splitlines()]


def test_an_invisible_character_is_named_in_the_message(scripts_dir: Path, tmp_path: Path) -> None:
    for char in ("\u202e", "\u0085", "\u200b"):
        result = run_dry(scripts_dir, write_messages(tmp_path / "m.json", [{"file": f"bucket/a{char}.fits", "ra": 1, "dec": 1}]))
        assert result.returncode == 2
        assert 'field "file"' in result.stderr and "invisible" in result.stderr, result.stderr
        assert char not in result.stderr  # shown escaped, so the line reads as it is


def test_a_label_with_invisible_characters_is_refused(scripts_dir: Path, tmp_path: Path) -> None:
    for char in ("\u202e", "\u0085", "\u2066", "\ufeff"):
        result = run_dry(scripts_dir, write_messages(tmp_path / "m.json",
                                                     [{"file": "bucket/a.fits", "ra": 1, "dec": 1, "label": f"a{char}"}]))
        assert result.returncode == 2
        assert 'field "label"' in result.stderr


def test_rclones_quote_character_in_a_key_is_refused(scripts_dir: Path, tmp_path: Path) -> None:
    result = run_dry(scripts_dir, write_messages(tmp_path / "m.json", [{"file": "bucket/a\u201bb.fits", "ra": 1, "dec": 1}]))
    assert result.returncode == 2
    assert 'field "file"' in result.stderr and "U+201B" in result.stderr and "rclone" in result.stderr, result.stderr


def test_a_crop_key_longer_than_s3_allows_is_refused(scripts_dir: Path, tmp_path: Path) -> None:
    # BUCKET/KEY: S3's key (after "BUCKET/") may be 1024 bytes; a crop's key adds
    # "_<label>_<digest>_crop.fits" to the image's key stem.
    label = "l" * 64
    suffix = len(f"_{label}_123456789012_crop.fits")
    longest = "d/" + "k" * (1024 - suffix - 2) + ".fits"
    too_long = "d/" + "k" * (1024 - suffix - 1) + ".fits"
    ok = run_dry(scripts_dir, write_messages(tmp_path / "ok.json", [{"file": f"bucket/{longest}", "ra": 1, "dec": 1, "label": label}]))
    assert ok.returncode == 0, ok.stderr
    (key,) = crop_keys(ok.stdout)
    assert len(key.split("/", 1)[1].encode()) == 1024
    bad = run_dry(scripts_dir, write_messages(tmp_path / "bad.json", [{"file": f"bucket/{too_long}", "ra": 1, "dec": 1, "label": label}]))
    assert bad.returncode == 2
    assert "bad.json" in bad.stderr and "1025 bytes" in bad.stderr and "1024" in bad.stderr, bad.stderr


# ---------------------------------------------------------------- messages

@pytest.mark.parametrize("field", ["file", "ra", "dec", "label", "unknown"])
def test_a_huge_value_is_cut_in_the_message(scripts_dir: Path, tmp_path: Path, field: str) -> None:
    huge = "x" * (1048576 - 200) + ".fits"
    fields: dict[str, object] = {"file": "bucket/a.fits", "ra": 1, "dec": 1}
    if field == "unknown":
        fields[huge] = 1
    else:
        fields[field] = huge
    path = tmp_path / "m.json"
    path.write_text(json.dumps(fields))
    assert path.stat().st_size <= 1048576
    result = run_dry(scripts_dir, path)
    assert result.returncode == 2
    assert len(result.stderr) < 1000, result.stderr[:300]
    assert "x" * 64 + "..." in result.stderr


# ---------------------------------------------------------------- bash

OLD_BASH = ["3.2.57(1)-release", "4.0.0(1)-release", "4.3.48(1)-release", "", None]
NEW_BASH = ["4.4.0(1)-release", "5.2.15(1)-release", "10.0.0(1)-release"]


def test_every_script_refuses_a_bash_older_than_4_4(scripts_dir: Path) -> None:
    """bash sets BASH_VERSION itself, so an old bash cannot be faked in bash: each script runs under
    dash (a POSIX sh, which parses none of the bash syntax below the check) with BASH_VERSION in its
    environment. Exit 3 with the message proves that the check's logic is right and that the check
    runs before any later line of the script is parsed; it does not run a real bash 3.2."""
    scripts = sorted(scripts_dir.glob("*.sh"))
    assert len(scripts) == 7
    for script in scripts:
        for version in OLD_BASH:
            environment = {"PATH": os.environ["PATH"]} | ({} if version is None else {"BASH_VERSION": version})
            result = subprocess.run(["dash", str(script), "--help"], capture_output=True, text=True, check=False,
                                    env=environment)
            assert result.returncode == 3, (script.name, version, result.stderr)
            assert result.stderr == f"{script.name}: needs bash 4.4 or newer; this is {version or 'not bash'}\n"
        for version in NEW_BASH:
            result = subprocess.run(["dash", str(script), "--help"], capture_output=True, text=True, check=False,
                                    env={"PATH": os.environ["PATH"], "BASH_VERSION": version})
            assert "needs bash 4.4" not in result.stderr, (script.name, version)
        # and under bash itself, the check lets the script run
        result = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, check=False)
        assert result.returncode == 0 and "needs bash" not in result.stderr


def test_sky2xy_places_every_form_as_the_plain_one(scripts_dir: Path, shim_state, tmp_path: Path) -> None:
    # sky2xy itself reads "9E1" and "9001E-2" as something else than 90 and 90.01 (not "9e1", nor
    # "9.0E1"): the script must not hand it those.
    from tests.fitsimages import make_image
    image = tmp_path / "image.fits"
    make_image(image, nx=100, ny=100, ra=90.0, dec=10.0, scale_arcsec=36)
    pixels = []
    for number, (ra, dec) in enumerate([("90.01", "10.02"), ("9001E-2", "1002E-2"), ("9.001E1", "1.002E1"),
                                        ("9001e-2", "1002e-2"), ("+.9001e+2", "10.020"), ("0090.01", "010.02")]):
        xy = tmp_path / f"{number}.xy"
        done = subprocess.run(["bash", str(scripts_dir / "get_world_2_pix.sh"), str(image), ra, dec, str(xy)],
                              env=shim_state.env(), capture_output=True, text=True, check=False)
        assert done.returncode == 0, (ra, dec, done.stderr)
        pixels.append(xy.read_text().split("->")[1].split())
    assert pixels == [pixels[0]] * len(pixels)
