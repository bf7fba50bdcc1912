import json

import numpy as np
import pytest
import xarray as xr

from landscape import io


def test_save_load_roundtrip(tmp_path):
    ds = xr.Dataset({"energy": ("theta", np.arange(3.0), io.energy_attrs("E"))}, coords={"theta": [0.0, 1.0, 2.0]})
    ds.attrs.update(io.provenance("demo", {"a": 1}, prior={"name": "p"}))
    out = io.save(ds, tmp_path / "sub" / "r.nc")
    back = io.load(out)
    xr.testing.assert_identical(back, ds)
    assert io.config_of(back) == {"a": 1} and json.loads(back.attrs["prior"]) == {"name": "p"}
    for k in ("landscape_version", "torch_version", "created", "study"):
        assert k in back.attrs
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name != "r.nc"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "r.nc"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_previous_file(tmp_path):
    target = tmp_path / "r.nc"
    ds = xr.Dataset({"v": ("theta", [1.0])})
    io.save(ds, target)
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError
    xr.testing.assert_identical(io.load(target), ds)


def test_strings_combined_from_saved_parts_keep_their_full_width(tmp_path):
    """A part read back from disk remembers its strings' fixed width; the combined file must not cut the
    longer strings of later parts to it (morse-bott's prior coordinate was written as 'gs', 'tw', 'gm')."""
    import xarray as xr
    for name, p in (("a", "gs"), ("b", "tweedie")):
        io.save(xr.Dataset({"v": ("prior", [1.0]), "verdict": ("prior", [p + " holds"])}, coords={"prior": [p]}),
                tmp_path / f"{name}.nc")
    parts = [io.load(tmp_path / f"{n}.nc") for n in "ab"]
    io.save(xr.concat(parts, dim="prior"), tmp_path / "c.nc")
    back = io.load(tmp_path / "c.nc")
    assert list(back.prior.values) == ["gs", "tweedie"]
    assert list(back.verdict.values) == ["gs holds", "tweedie holds"]
