"""Stage 5, verify: shellcheck with every optional check, findings mapped back to the templates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from compiler import verify
from compiler.build import compile_spec
from compiler.diagnostics import BuildError
from compiler.render import Origin, RenderedScript
from compiler.verify import SHELLCHECK_OPTIONS, Finding, check_scripts, find_shellcheck, verify_scripts

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "fixtures" / "specs" / "lts-template.yaml"

BAD = RenderedScript(
    name="bad.sh",
    text='#!/bin/bash\nx="a b"\necho $x\n',
    origins=(Origin("bad.sh.j2", 1), Origin("bad.sh.j2", 4), Origin("_part.sh.j2", 12)),
)


@pytest.fixture(autouse=True)
def no_remembered_results(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """shellcheck really runs in these tests, and nothing is written outside tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LTSFLOW_NO_CACHE", "1")


def test_shellcheck_runs_with_every_optional_check_and_no_exclusion() -> None:
    assert "--enable=all" in SHELLCHECK_OPTIONS
    assert "--norc" in SHELLCHECK_OPTIONS
    assert not any(option.startswith(("--exclude", "-e")) for option in SHELLCHECK_OPTIONS)
    assert Path(find_shellcheck()).exists()


def test_the_default_build_is_shellcheck_clean() -> None:
    scripts = compile_spec(DEFAULT_SPEC).scripts
    assert len(scripts) == 7
    assert check_scripts(scripts) == ()
    verify_scripts(scripts)


def test_a_finding_names_its_code_line_and_template_line() -> None:
    findings = check_scripts((BAD,))
    sc2086 = [f for f in findings if f.code == 2086]
    assert sc2086 == [Finding(
        script="bad.sh", line=3, column=6, code=2086, level="info",
        message="Double quote to prevent globbing and word splitting.",
        template="_part.sh.j2", template_line=12,
    )]
    assert str(sc2086[0]) == (
        "bad.sh:3:6: SC2086 (info): Double quote to prevent globbing and word splitting. [templates/_part.sh.j2:12]"
    )
    # --enable=all is on: the optional "prefer braces" check (SC2250) fires too.
    assert [(f.line, f.code) for f in findings] == [(3, 2086), (3, 2250)]
    assert findings == tuple(sorted(findings, key=lambda f: (f.script, f.line, f.column, f.code)))


def test_a_line_without_an_origin_still_reports_the_finding() -> None:
    script = RenderedScript("short.sh", "#!/bin/bash\necho $y\n", (None,))
    findings = check_scripts((script,))
    assert findings and all(f.template is None and f.template_line is None for f in findings)
    assert "[templates/" not in str(findings[0])
    assert str(findings[0]).startswith("short.sh:2:")


def test_findings_of_several_scripts_are_all_reported() -> None:
    clean = RenderedScript("clean.sh", '#!/bin/bash\nprintf "%s\\n" "${1:-}"\n', (Origin("c", 1), Origin("c", 2)))
    findings = check_scripts((clean, BAD, RenderedScript("also.sh", "#!/bin/bash\nls `pwd`\n", (None, None))))
    assert {f.script for f in findings} == {"bad.sh", "also.sh"}


def test_verify_raises_a_build_error_naming_every_finding() -> None:
    with pytest.raises(BuildError) as raised:
        verify_scripts((BAD,))
    message = str(raised.value)
    assert message.startswith("shellcheck found problems in the generated scripts:\n")
    assert "bad.sh:3:6: SC2086 (info)" in message
    assert "[templates/_part.sh.j2:12]" in message


def test_a_broken_shellcheck_is_a_build_error_not_a_pass(tmp_path: Path) -> None:
    fake = tmp_path / "shellcheck"
    fake.write_text("#!/bin/sh\necho 'shellcheck: exploded' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BuildError, match="shellcheck failed on bad.sh: shellcheck: exploded"):
        check_scripts((BAD,), shellcheck=str(fake))
    silent = tmp_path / "silent"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    with pytest.raises(BuildError, match="shellcheck failed on bad.sh"):
        check_scripts((BAD,), shellcheck=str(silent))


def test_only_clean_results_are_remembered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LTSFLOW_NO_CACHE")
    cache = tmp_path / "cache" / "ltsflow" / "shellcheck-clean"
    clean = RenderedScript("clean.sh", '#!/bin/bash\nprintf "%s\\n" "${1:-}"\n', (Origin("c", 1), Origin("c", 2)))
    assert {f.script for f in check_scripts((clean, BAD))} == {"bad.sh"}
    assert len(list(cache.iterdir())) == 1  # the clean script only
    # Once remembered, the clean script is not checked again (a broken shellcheck is never run for it)...
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(verify, "_cache_key", lambda _shellcheck, text: hashlib.sha256(text.encode()).hexdigest())
    (cache / hashlib.sha256(clean.text.encode()).hexdigest()).touch()
    assert check_scripts((clean,), shellcheck=str(broken)) == ()
    # ...but a script with findings is checked afresh every time.
    with pytest.raises(BuildError, match="shellcheck failed on bad.sh"):
        check_scripts((clean, BAD), shellcheck=str(broken))
