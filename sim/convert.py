"""cocotb testbench of ``Convert`` (driven by ``tests/test_convert.py``).

Vectors: every input code when the input format has 16 bits or fewer; otherwise
seeded random fp32 bit patterns plus directed cases built from the output format
(every midpoint between neighbouring output values, one fp32 ulp either side, the
overflow threshold, specials, fp32 subnormals). Expected codes come from
``golden.convert``, itself checked against ml_dtypes.
"""

import numpy as np

from lpcores import golden
from lpcores.formats import get_format

from .stream import pack, standard_tests, unpack


def directed_fp32(out_fmt):
    """fp32 bit patterns that probe every rounding decision of ``out_fmt``."""
    f = get_format(out_fmt)
    codes = np.arange(1 << (f.bits - 1), dtype=np.int64)     # non-negative codes
    vals = golden.decode(codes, f)
    vals = np.unique(vals[np.isfinite(vals)])
    mids = (vals[:-1] + vals[1:]) / 2
    top = np.array([f.max_value * (1 + 2.0 ** -(f.man_bits + 1)),   # overflow threshold
                    f.max_value * 2, 1e38])
    pts = np.concatenate([vals, mids, top]).astype(np.float32)
    pts = np.concatenate([pts, np.nextafter(pts, np.float32(np.inf)),
                          np.nextafter(pts, np.float32(0))])
    pts = np.concatenate([pts, -pts])
    bits = pts.view(np.uint32).astype(np.int64)
    specials = np.array([0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000,
                         0xFFC00000, 0x7F800001, 0x00000001, 0x807FFFFF, 0x00400000,
                         0x7F7FFFFF, 0xFF7FFFFF, 0x00800000], dtype=np.int64)
    return np.concatenate([bits, specials])


def vectors(tb):
    p = tb.sidecar["params"]
    fin = get_format(p["in_fmt"])
    if fin.bits <= 16:
        codes = np.arange(1 << fin.bits, dtype=np.int64)
        tb.nprng("perm").shuffle(codes)
        return {"a": codes}, "exhaustive"
    n = int(tb.options.get("random", 20000))
    rnd = tb.nprng("random").integers(0, 1 << 32, size=n, dtype=np.int64)
    directed = directed_fp32(p["out_fmt"])
    # 16-bit outputs have ~400k directed points; options["directed"] caps them with a
    # seeded sample (the slow run takes them all)
    cap = tb.options.get("directed")
    if cap is not None and len(directed) > int(cap):
        directed = tb.nprng("directed").choice(directed, size=int(cap), replace=False)
    return {"a": np.concatenate([directed, rnd])}, \
        f"{len(directed)} directed+{n} random"


def expected(tb, f):
    p = tb.sidecar["params"]
    r = golden.convert(f["a"], p["in_fmt"], p["out_fmt"], rounding=p["rounding"],
                       saturate=p["saturate"])
    return pack(tb.fo, r=r)


def describe(tb):
    p = tb.sidecar["params"]

    def render(bin_, exp, got):
        a = unpack(tb.fi, [bin_])["a"][0]
        return (f"a={golden.decode([a], p['in_fmt'])[0]!r} "
                f"expected={golden.decode([exp], p['out_fmt'])[0]!r} "
                f"got={golden.decode([got], p['out_fmt'])[0]!r}")
    return render


test_timing, test_vectors, test_reset_midstream = standard_tests(vectors, expected,
                                                                 describe)
