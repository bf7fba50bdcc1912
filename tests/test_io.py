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
