"""The message's field library: the types a spec's `message` declares its fields with.

A run's input is messages, one JSON object each, whose fields the spec declares (`message`), each
of a type of this library. Each type is a model of its parameters, and says in Python what value
it accepts, as the check for the type does for each message (in read_messages.sh, which reads
schedule.sh's input): so a field's default is checked when the spec is, and each rule is worded
once, for schedule.sh's `--help` and the README.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .diagnostics import listed, quoted

FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
RESERVED_NAMES = ("index", "image", "crop_key", "sources", "source", "position")
"""What schedule.sh keeps for each object beside its fields (OBJECT_INDEX, REQUEST_SOURCE, ...)."""
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")
_LARGEST = 10**18
"""Integer fields and their bounds stay within bash's arithmetic (64 bits)."""
MAX_VALUE_BYTES = 1024

# S3's naming rules for general purpose buckets, beyond the characters and the length
# (docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html); read_messages.sh's
# valid_bucket applies the same to the buckets of messages.
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_IP_ADDRESS = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
BUCKET_SHAPE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def bucket_problem(bucket: str) -> str | None:
    """Why `bucket` (3 to 63 of a-z, 0-9, "." and "-", starting and ending with a letter or digit)
    breaks one of S3's other rules, or None."""
    if ".." in bucket:
        return 'it has two periods in a row'
    if _IP_ADDRESS.fullmatch(bucket):
        return "it is formatted as an IP address"
    for prefix in _RESERVED_PREFIXES:
        if bucket.startswith(prefix):
            return f"S3 keeps the prefix {quoted(prefix)}"
    for suffix in _RESERVED_SUFFIXES:
        if bucket.endswith(suffix):
            return f"S3 keeps the suffix {quoted(suffix)}"
    return None



# ----------------------------------------------------------------- the pattern of a string field

_ESCAPABLE = set(".[](){}*+?|^$\\/-")
_PLAIN = re.compile(r"[A-Za-z0-9 _/:@,=%#!~&;<>'\"`-]")
_BRACKET_PLAIN = re.compile(r"[A-Za-z0-9 _/:@,=%#!~&;<>'\".()*+?{}|$-]")


def ere_problem(pattern: str) -> str | None:
    """Why `pattern` is not of the syntax that means the same in Python's `re` and in bash's `=~`
    (POSIX extended regular expressions, byte by byte as read_messages.sh reads them), or None.

    The syntax: printable ASCII characters matching themselves; `.`; `\\` before one of
    `.[](){}*+?|^$\\/-` for that character; a bracket `[...]` or `[^...]` of such characters and
    ranges within digits, lower-case or upper-case letters; groups `(...)` and branches `|`, none
    empty; each of these at most once followed by `*`, `+`, `?`, `{M}`, `{M,}` or `{M,N}`. No anchors:
    the whole value must match."""
    at, depth, atom = 0, 0, False
    while at < len(pattern):
        char = pattern[at]
        if char == "\\":
            if at + 1 == len(pattern) or pattern[at + 1] not in _ESCAPABLE:
                return f"\"\\\\\" must come before one of {''.join(sorted(_ESCAPABLE))} (at {at + 1})"
            at, atom = at + 2, True
        elif char == "[":
            end = _bracket_end(pattern, at)
            if isinstance(end, str):
                return end
            at, atom = end, True
        elif char == "(":
            if pattern[at + 1:at + 2] in (")", "|", ""):
                return f"an empty group or branch (at {at + 1})"
            at, depth, atom = at + 1, depth + 1, False
        elif char == ")":
            if depth == 0 or pattern[at - 1] == "|":
                return f"an unmatched \")\" or an empty branch (at {at + 1})"
            at, depth, atom = at + 1, depth - 1, True
        elif char == "|":
            if at == 0 or pattern[at - 1] in "(|" or at + 1 == len(pattern):
                return f"an empty branch (at {at + 1})"
            at, atom = at + 1, False
        elif char in "*+?{":
            if not atom:
                return f"{quoted(char)} must follow something to repeat (at {at + 1})"
            if char == "{":
                bound = re.compile(r"\{(\d{1,3})(,(\d{1,3})?)?\}").match(pattern, at)
                if bound is None or (bound.group(3) and int(bound.group(3)) < int(bound.group(1))):
                    return f"a repeat must be {{M}}, {{M,}} or {{M,N}} with M <= N <= 999 (at {at + 1})"
                at = bound.end()
            else:
                at += 1
            atom = False
        elif char == "." or _PLAIN.fullmatch(char):
            at, atom = at + 1, True
        else:
            return f"{quoted(char)} is not allowed (at {at + 1}): see the spec reference"
    if depth:
        return "an unclosed \"(\""
    return None if pattern else "must not be empty"


def _bracket_end(pattern: str, start: int) -> int | str:
    """Where the bracket opened at `start` ends (just past its `]`), or what is wrong with it."""
    at = start + 1 + (pattern[start + 1:start + 2] == "^")
    first = at
    while at < len(pattern) and pattern[at] != "]":
        char = pattern[at]
        if char == "-" and first < at and at + 1 < len(pattern) and pattern[at + 1] != "]":
            low, high = pattern[at - 1], pattern[at + 1]
            if not any(low in chars and high in chars and low <= high
                       for chars in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")):
                return f"a range in [...] must be within digits, lower-case or upper-case letters (at {at + 1})"
            at += 2
            continue
        if not _BRACKET_PLAIN.fullmatch(char) and char != "^":
            return f"{quoted(char)} is not allowed in [...] (at {at + 1})"
        at += 1
    if at == len(pattern) or at == first:
        return f"an unclosed or empty \"[\" (at {start + 1})"
    return at + 1


def ere_escaped(text: str) -> str:
    """`text` as an extended regular expression that matches it alone (bash's `=~`, Python's `re`)."""
    return re.sub(r"([.\[\](){}*+?|^$\\])", r"\\\1", text)


def _pattern(value: str) -> str:
    problem = ere_problem(value)
    if problem:
        raise ValueError(f"is not a pattern ltsflow can check alike in Python and bash: {problem}")
    return value


# ----------------------------------------------------------------- values


def _decimal(value: str) -> Decimal | None:
    """A decimal number in any JSON number form or close to one ("9e1", "-0.0", "5.", ".5", "+1.5E-3")."""
    if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", value) or len(value) > MAX_VALUE_BYTES:
        return None
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def _sexagesimal(value: str, signed: bool) -> tuple[int, int, int, str] | None:
    found = re.fullmatch(r"([+-]?)(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?" if signed
                         else r"()(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?", value)
    if found is None:
        return None
    return int(found.group(2)), int(found.group(3)), int(found.group(4) or 0), found.group(5) or ""


def _invisible(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cf", "Zl", "Zp") or 0x80 <= ord(char) <= 0x9F for char in value)


def _suffix(value: str) -> str:
    if not _SUFFIX.fullmatch(value):
        raise ValueError(f"must be \".\" and 1 to 16 letters or digits, such as \".fits\", got {quoted(value)}")
    return value


def _word(value: str) -> str:
    if not _WORD.fullmatch(value):
        raise ValueError(f"must be 1 to 64 letters, digits, \".\", \"_\", \"+\" or \"-\", got {quoted(value)}")
    return value


_DEFAULT = ("The value of a message that does not give the field, of the field's type (a right ascension or "
            "declination written as a string: `\"0\"`).")


class _Field(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    check: ClassVar[str]
    """The name of read_messages.sh's check function for the type (`check_NAME`)."""
    numbers: ClassVar[bool] = False
    """A message may give the value as a JSON number (else only as a string)."""
    placeholder: ClassVar[str] = ""
    """How `--help` writes a value in a message ("" for the field's name in upper case)."""

    required: bool = Field(default=False, description="Every message must give the field. A field that is not "
                           "required has a `default`.")

    def rule(self) -> str:
        """What a value must be, after "must be" (read_messages.sh's message, `--help` and the README)."""
        raise NotImplementedError

    def refuses(self, value: str) -> str | None:
        """Why `value` is not a value of the field, as read_messages.sh's check says it, or None."""
        raise NotImplementedError

    @property
    def default_text(self) -> str | None:
        default = getattr(self, "default", None)
        return None if default is None else str(default)

    def arguments(self) -> tuple[str, ...]:
        """What read_messages.sh's check takes after the field's name and value: for a type with parameters, what
        a value must be (its message), then the parameters."""
        return ()

    def value_pattern(self) -> str | None:
        """An extended regular expression every value of the field matches (maybe more), which may stand
        anywhere in a longer one; None when the type has no simple one (a key, a right ascension)."""
        return None


class KeyField(_Field):
    """The key of an object in a remote, as `BUCKET/KEY`: checked as S3 names buckets and keys, with no `.`, `..`
    or empty segment, control or invisible character, and at most 1024 bytes. A sync-in step fetches the
    objects the messages name in this field (the field of its remote)."""

    check: ClassVar[str] = "key"
    placeholder: ClassVar[str] = "BUCKET/KEY"
    type: Literal["key"] = Field(description="The field's type.")
    remote: str = Field(description="Key fields only: the remote the objects are in, a key of `remotes`.")
    suffixes: tuple[Annotated[str, AfterValidator(_suffix)], ...] = Field(
        default=(), description="Key fields only: the endings a key may have, such as `.fits`, a \".\" and 1 to 16 "
        "letters or digits, matched in any case (`.FITS` is `.fits`). None: any key.")
    default: str | None = Field(default=None, description=_DEFAULT)

    def rule(self) -> str:
        endings = f", ending in {listed(list(self.suffixes))} (in any case)" if self.suffixes else ""
        return f"BUCKET/KEY, an object in remote {quoted(self.remote)}{endings}"

    def suffix_pattern(self) -> str:
        """The endings as a bash extended regular expression, in any case."""
        cased = ["".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in s[1:]) for s in self.suffixes]
        return rf"\.({'|'.join(cased)})$" if cased else ""

    def arguments(self) -> tuple[str, ...]:
        return (f"must end in {listed(list(self.suffixes))}" if self.suffixes else "", self.suffix_pattern())

    def refuses(self, value: str) -> str | None:
        bucket = value.split("/", 1)[0]
        checks = (
            (len(value.encode()) > MAX_VALUE_BYTES, "is longer than 1024 bytes"),
            (not value, "is empty"),
            (any(unicodedata.category(c) == "Cc" and ord(c) < 0x80 for c in value) or "\x7f" in value,
             "contains a control character (a newline, tab or similar)"),
            (_invisible(value), "contains an invisible character"),
            ("\u201b" in value, "contains U+201B, the character rclone quotes with"),
            (value.startswith("/"), "must be BUCKET/KEY, not an absolute path"),
            (any(s in ("", ".", "..") for s in value.split("/")), 'must not contain ".", ".." or empty path segments'),
            (not BUCKET_SHAPE.fullmatch(bucket) or bucket_problem(bucket) is not None, "must start with a bucket name"),
            ("/" not in value, "must name an object in the bucket: BUCKET/KEY"),
            (bool(self.suffixes) and not value.lower().endswith(tuple(s.lower() for s in self.suffixes)),
             f"must end in {listed(list(self.suffixes))}"),
        )
        return next((reason for failed, reason in checks if failed), None)


class RightAscensionField(_Field):
    """A right ascension: decimal degrees in [0, 360), in any JSON number form, as a number or a string, or
    sexagesimal hours `HH:MM[:SS[.s]]`. A world-to-pixel step reads it."""

    check: ClassVar[str] = "right_ascension"
    numbers: ClassVar[bool] = True
    placeholder: ClassVar[str] = "RA"
    type: Literal["right-ascension"] = Field(description="The field's type.")
    default: str | None = Field(default=None, description=_DEFAULT)

    def rule(self) -> str:
        return "decimal degrees in [0, 360) or sexagesimal hours HH:MM:SS.s"

    def refuses(self, value: str) -> str | None:
        number, hours = _decimal(value), _sexagesimal(value, signed=False)
        if number is not None and 0 <= number < 360:
            return None
        if hours is not None and hours[0] < 24 and hours[1] < 60 and hours[2] < 60:
            return None
        return f"must be {self.rule()}"


class DeclinationField(_Field):
    """A declination: decimal degrees in [-90, 90], in any JSON number form, as a number or a string, or
    sexagesimal degrees `[+-]DD:MM[:SS[.s]]`. A world-to-pixel step reads it."""

    check: ClassVar[str] = "declination"
    numbers: ClassVar[bool] = True
    placeholder: ClassVar[str] = "DEC"
    type: Literal["declination"] = Field(description="The field's type.")
    default: str | None = Field(default=None, description=_DEFAULT)

    def rule(self) -> str:
        return "decimal degrees in [-90, 90] or sexagesimal degrees +DD:MM:SS.s"

    def refuses(self, value: str) -> str | None:
        number, degrees = _decimal(value), _sexagesimal(value, signed=True)
        if number is not None and abs(number) <= 90:
            return None
        if degrees is not None and degrees[1] < 60 and degrees[2] < 60 and (
                degrees[0] < 90 or (degrees[0] == 90 and degrees[1:3] == (0, 0) and not degrees[3].strip("0"))):
            return None
        return f"must be {self.rule()}"


class LabelField(_Field):
    """A label: 1 to 64 letters, digits, \".\", \"_\" and \"-\", starting with a letter or digit. A crop step
    names each crop with it."""

    check: ClassVar[str] = "label"
    placeholder: ClassVar[str] = "LABEL"
    type: Literal["label"] = Field(description="The field's type.")
    default: str | None = Field(default=None, description=_DEFAULT)

    def rule(self) -> str:
        return '1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit'

    def value_pattern(self) -> str:
        return _LABEL.pattern

    def refuses(self, value: str) -> str | None:
        return None if _LABEL.fullmatch(value) else f"must be {self.rule()}"


_Bound = Annotated[int, Field(ge=-_LARGEST, le=_LARGEST)]


class IntegerField(_Field):
    """A whole number, as a JSON number or a string of digits (`7`, `"-3"`; not `7.0` or `1e3`), within its
    bounds."""

    check: ClassVar[str] = "integer"
    numbers: ClassVar[bool] = True
    type: Literal["integer"] = Field(description="The field's type.")
    minimum: _Bound | None = Field(default=None, description="Integer fields only: the smallest value (from "
                                   "-10^18; none: -10^18).")
    maximum: _Bound | None = Field(default=None, description="Integer fields only: the largest value (up to "
                                   "10^18; none: 10^18).")
    default: _Bound | None = Field(default=None, description=_DEFAULT)

    def bounds(self) -> tuple[int, int]:
        return (-_LARGEST if self.minimum is None else self.minimum, _LARGEST if self.maximum is None else self.maximum)

    def rule(self) -> str:
        low, high = self.bounds()
        return f"a whole number from {low} to {high}"

    def arguments(self) -> tuple[str, ...]:
        return (f"must be {self.rule()}", *(str(bound) for bound in self.bounds()))

    def value_pattern(self) -> str:
        return _INTEGER.pattern

    def refuses(self, value: str) -> str | None:
        low, high = self.bounds()
        if _INTEGER.fullmatch(value) and low <= int(value) <= high:
            return None
        return f"must be {self.rule()}"


class ChoiceField(_Field):
    """One of a few words, as a string."""

    check: ClassVar[str] = "choice"
    type: Literal["choice"] = Field(description="The field's type.")
    choices: tuple[Annotated[str, AfterValidator(_word)], ...] = Field(
        min_length=1, description="Choice fields only: the words a message may give: each 1 to 64 letters, digits, "
        "\".\", \"_\", \"+\" and \"-\", starting with a letter or digit.")
    default: str | None = Field(default=None, description=_DEFAULT)

    def rule(self) -> str:
        return "one of " + listed([quoted(choice) for choice in self.choices])

    def arguments(self) -> tuple[str, ...]:
        return (f"must be {self.rule()}", *self.choices)

    def value_pattern(self) -> str:
        return "(" + "|".join(ere_escaped(choice) for choice in self.choices) + ")"

    def refuses(self, value: str) -> str | None:
        return None if value in self.choices else f"must be {self.rule()}"


class StringField(_Field):
    """Text that matches a pattern: at most 1024 bytes, with no control character."""

    check: ClassVar[str] = "string"
    type: Literal["string"] = Field(description="The field's type.")
    pattern: Annotated[str, AfterValidator(_pattern)] = Field(
        description="String fields only: what the whole value must match, in a small syntax that Python and bash "
        "read alike: printable ASCII characters match themselves; `.` any character; `\\` before one of "
        "`.[](){}*+?|^$\\/-` that character; `[...]` and `[^...]` a character of a set, with ranges within "
        "digits or letters of one case (`[a-z0-9_]`); `(...)` a group and `|` a choice, neither empty; and "
        "after any of these, `*`, `+`, `?`, `{M}`, `{M,}` or `{M,N}` repeats it. No anchors: the whole value "
        "must match. Matched byte by byte, so `.` is one byte of a UTF-8 character.")
    default: str | None = Field(default=None, description=_DEFAULT)

    def rule(self) -> str:
        return f"text matching {self.pattern}"

    def arguments(self) -> tuple[str, ...]:
        return (f"must be {self.rule()}", f"^({self.pattern})$")

    def value_pattern(self) -> str:
        return f"({self.pattern})"

    def refuses(self, value: str) -> str | None:
        raw = value.encode("utf-8")
        if len(raw) > MAX_VALUE_BYTES:
            return "is longer than 1024 bytes"
        if re.search(r"[\x00-\x1f\x7f]", value):
            return "contains a control character (a newline, tab or similar)"
        # read_messages.sh matches bytes (LC_ALL=C), so this does too.
        if not re.fullmatch(self.pattern, raw.decode("latin-1"), re.DOTALL):
            return f"must be {self.rule()}"
        return None


MessageField = Annotated[KeyField | RightAscensionField | DeclinationField | LabelField | IntegerField | ChoiceField
                         | StringField, Field(discriminator="type")]
"""A field of the message: one of the library's types, by its `type`."""

FIELD_TYPES = {model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
               for model in (KeyField, RightAscensionField, DeclinationField, LabelField, IntegerField, ChoiceField,
                             StringField)}
"""Every type of the library, by its name."""
