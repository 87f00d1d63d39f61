"""End to end on the generated Verilog: FP32 matrices -> MXQuant RTL -> MXDot RTL,
both stages bit-exact to the golden models, and the error against numpy's FP32
product shows the expected trend over element formats (docs/mx.md has the table)."""

import pytest

from lpcores.sim.mxe2e import end_to_end


@pytest.mark.sim
@pytest.mark.slow
def test_end_to_end_error_trend(build_root, tmp_path):
    res = {f: end_to_end(f, M=8, N=8, K=128, build_root=build_root, work=tmp_path)
           for f in ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8")}
    for f, r in res.items():
        assert r["quant_exact"] and r["dot_exact"], r
    err = {f: r["fro_rel"] for f, r in res.items()}
    # same 8 (6) bits, more mantissa bits, less error
    assert err["e4m3"] < err["e5m2"]
    assert err["e2m3"] < err["e3m2"]
    # 4 bits lose most: MXFP4 well behind every 6- and 8-bit float format
    assert err["e2m1"] > 1.5 * max(err[f] for f in ("e4m3", "e5m2", "e3m2", "e2m3"))
    # 3 mantissa bits: each normal element within 2**-4 relative, so the product
    # within about twice that
    assert max(err["e4m3"], err["e2m3"]) < 2 ** -3
