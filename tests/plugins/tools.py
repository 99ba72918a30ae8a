"""Fixtures for the real wcstools/gnuastro tools and for FITS images made by code.

* ``require_tool(name)``: absolute path of a tool, or ``pytest.fail`` naming the Debian
  package. Never a skip: a machine without the tools cannot vouch for the pipeline.
* ``sky2xy_exe`` / ``astcrop_exe``: session fixtures built on it.
* ``fits_images``: a session-scoped factory/cache. ``fits_images(nx=..., ny=..., ra=...,
  dec=..., **make_image_kwargs)`` returns a ``FitsImage`` (path, wcs, nx, ny, lazy ``data``);
  the same arguments give the same file, made once per session (a 4096x4096 image is made
  once, however many tests ask for it). ``fits_images.no_wcs(nx, ny)`` and
  ``fits_images.not_fits()`` give the bad inputs.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from tests import fitsimages

__all__ = ["FitsImage", "FitsImageFactory", "require_tool"]


def require_tool(name: str) -> str:
    """Absolute path of ``name`` on PATH; fail (never skip) naming its Debian package."""
    path = shutil.which(name)
    if path is None:
        pkg = fitsimages.DEBIAN_PACKAGES.get(name, "?")
        pytest.fail(
            f"required tool {name!r} not found on PATH: install the Debian package "
            f"{pkg!r} (apt-get install {pkg})",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def sky2xy_exe() -> str:
    return require_tool("sky2xy")


@pytest.fixture(scope="session")
def astcrop_exe() -> str:
    return require_tool("astcrop")


@dataclass
class FitsImage:
    """An image made by ``fitsimages.make_image``: file, WCS, size, and pixels on demand."""

    path: Path
    wcs: WCS
    nx: int
    ny: int
    params: dict[str, Any]
    _data: np.ndarray | None = field(default=None, repr=False)

    @property
    def data(self) -> np.ndarray:
        """The pixel array as written (``data[y-1, x-1]``), read once and cached."""
        if self._data is None:
            with fits.open(self.path, memmap=False) as hdul:
                self._data = np.array(hdul[0].data)
        return self._data

    def world(self, x: float, y: float) -> tuple[float, float]:
        """RA, Dec (degrees) of the 1-based pixel position ``(x, y)``, from astropy."""
        ra, dec = self.wcs.pixel_to_world_values(x - 1.0, y - 1.0)
        return float(ra), float(dec)


def _key(kwargs: dict[str, Any]) -> str:
    def norm(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return tuple(norm(i) for i in v)
        if isinstance(v, type) or isinstance(v, np.dtype):
            return np.dtype(v).str
        return v

    text = repr(sorted((k, norm(v)) for k, v in kwargs.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class FitsImageFactory:
    """Session cache of synthetic images under one ``tmp_path_factory`` directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, FitsImage] = {}

    def __call__(self, *, name: str | None = None, **kwargs: Any) -> FitsImage:
        key = _key(kwargs)
        if key not in self._cache:
            stem = f"{name}-{key}" if name else f"img-{key}"
            path = self.root / f"{stem}.fits"
            wcs = fitsimages.make_image(path, **kwargs)
            self._cache[key] = FitsImage(path, wcs, kwargs["nx"], kwargs["ny"], dict(kwargs))
        return self._cache[key]

    def no_wcs(self, nx: int = 50, ny: int = 40) -> Path:
        path = self.root / f"nowcs-{nx}x{ny}.fits"
        if not path.exists():
            fitsimages.make_no_wcs(path, nx, ny)
        return path

    def not_fits(self) -> Path:
        path = self.root / "not-fits.fits"
        if not path.exists():
            fitsimages.make_not_fits(path)
        return path


@pytest.fixture(scope="session")
def fits_images(tmp_path_factory: pytest.TempPathFactory) -> FitsImageFactory:
    return FitsImageFactory(tmp_path_factory.mktemp("fits_images"))
