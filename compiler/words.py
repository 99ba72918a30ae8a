"""Words: the one model of a shell word, from the spec to the scripts.

A word is literal text and references to values the scripts only know at run time: an environment
variable the spec names (`$MYSCRATCH` in `scratch`), a variable of schedule.sh's (the run
directory), a field of each object. The spec parses its run-time paths into these parts, the plan
builds every argument from them, and the render stage quotes them, deciding nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Text:
    """Literal text."""

    text: str


@dataclass(frozen=True)
class Variable:
    """A shell variable's value at run time: an environment variable or one of schedule.sh's."""

    name: str


@dataclass(frozen=True)
class Environment:
    """An environment variable the spec names (`$MYSCRATCH`); schedule.sh checks it is set."""

    name: str


@dataclass(frozen=True)
class ObjectField:
    """A field of the object a batch line handles (file, ra, dec, label, crop_key, index, and image:
    the index of its image among the run's distinct images, the line of sync_in.list)."""

    field: str


@dataclass(frozen=True)
class RequestField:
    """A field of the request schedule.sh is making an object of (file, ra, dec, label): an object's key
    is made from these before the requests with one key become one object."""

    field: str


@dataclass(frozen=True)
class RequestStem:
    """A field of the request less its extension (the text from its last "."): `BUCKET/a` of `BUCKET/a.fits`."""

    field: str


@dataclass(frozen=True)
class PositionDigest:
    """The request's position digest: the first 12 hex digits of the sha256 of its position and the crop
    width, which schedule.sh's position_digests makes for every request before their keys."""


@dataclass(frozen=True)
class EveryObject:
    """A field of every object, as separate words (`"${OBJECT_FILE[@]}"`)."""

    field: str


Part = Text | Variable | Environment | ObjectField | RequestField | RequestStem | PositionDigest | EveryObject


@dataclass(frozen=True)
class Word:
    """One shell word, made of parts; rendered as a single quoted argument."""

    parts: tuple[Part, ...]

    @classmethod
    def of(cls, *parts: str | Part) -> Word:
        return cls(tuple(Text(p) if isinstance(p, str) else p for p in parts))
