"""End to end on the generated Verilog: FP32 matrices -> MXQuant -> MXDot, against
the FP32 product computed by numpy (docs/mx.md, tests/test_mx_e2e.py).

Two parts:

* a replay testbench (the cocotb test :func:`replay`): streams input beats read from
  a JSON file through the DUT with the one stream driver (``sim/stream.py``: random
  valid gaps and ready backpressure) and writes every output beat back to JSON;
* :func:`end_to_end`, run outside cocotb: quantizes the rows of ``A`` and the columns
  of ``B`` on the MXQuant RTL, feeds the MX blocks to the MXDot RTL, checks both
  stages bit for bit against ``golden.mx_quantize`` / ``golden.mx_dot``, and reports
  the relative error of the MX product against ``np.float32`` ``A @ B``.

``python -m lpcores.sim.mxe2e`` prints the error table of every element format.
"""

import json
from pathlib import Path

import numpy as np

import cocotb

from .stream import TB, pack, unpack


@cocotb.test()
async def replay(dut):
    """Stream the beats of options['in'], write the outputs to options['out']."""
    tb = TB(dut)
    await tb.start()
    job = json.loads(Path(tb.options["in"]).read_text())
    beats = [int(b, 16) for b in job["beats"]]
    tr = await tb.stream(beats, rng=tb.rng("replay"), ends=job["ends"], p_valid=0.9,
                         p_ready=0.8)
    Path(tb.options["out"]).write_text(json.dumps([hex(b) for b in tr.outputs]))


def _run(core, beats, ends, work, sim, build_root, seed):
    from . import runner
    work.mkdir(parents=True, exist_ok=True)
    src, dst = work / f"{core.module_name}_in.json", work / f"{core.module_name}_out.json"
    src.write_text(json.dumps({"beats": [hex(b) for b in beats], "ends": ends}))
    if dst.exists():
        dst.unlink()
    res = runner.run(core, "lpcores.sim.mxe2e", sim=sim, seed=seed,
                     options={"in": str(src), "out": str(dst)}, build_root=build_root)
    runner.assert_passes(res)
    return [int(b, 16) for b in json.loads(dst.read_text())]


def llm_like(rng, shape):
    """Normal data with a few large outlier channels (as LLM activations have)."""
    x = rng.standard_normal(shape)
    cols = rng.choice(shape[-1], max(1, shape[-1] // 64), replace=False)
    x[..., cols] *= 20
    return x.astype(np.float32)


def end_to_end(elem_fmt, *, M=8, N=8, K=128, lanes=8, sim="verilator",
               build_root="build", seed=3, work=None):
    """Run A (M x K) @ B (K x N) through MXQuant and MXDot RTL; return a dict with
    the relative errors and whether both stages matched the golden models."""
    from lpcores import golden
    from lpcores.hdl.base import sidecar
    from lpcores.hdl.mxdot import MXDot
    from lpcores.hdl.mxquant import MXQuant

    work = Path(work or Path(build_root) / "mxe2e")
    rng = np.random.default_rng(seed)
    A = llm_like(rng, (M, K))
    Bm = rng.standard_normal((K, N)).astype(np.float32) * 0.05
    nb = K // 32

    # 1. quantize rows of A and columns of B (blocks along K) on the MXQuant RTL
    q = MXQuant(in_fmt="fp32", elem_fmt=elem_fmt, lanes=lanes)
    sq = sidecar(q)
    blocks = np.concatenate([A.reshape(M * nb, 32), Bm.T.reshape(N * nb, 32)])
    flat = blocks.view(np.uint32).reshape(-1, lanes)
    beats = pack(sq["ports"]["i"]["fields"], **{f"x{k}": flat[:, k] for k in range(lanes)})
    per = 32 // lanes
    ends = [(k % per) == per - 1 for k in range(len(beats))]
    out = unpack(sq["ports"]["o"]["fields"],
                 _run(q, beats, ends, work, sim, build_root, seed))
    scales = np.array(out["scale"], dtype=np.int64)
    codes = np.array([out[f"e{k}"] for k in range(32)], dtype=np.int64).T
    gs, gc = golden.mx_quantize(blocks, elem_fmt)
    quant_exact = bool(np.array_equal(scales, gs) and np.array_equal(codes, gc))
    a_s, b_s = scales[:M * nb].reshape(M, nb), scales[M * nb:].reshape(N, nb)
    a_c, b_c = codes[:M * nb].reshape(M, K), codes[M * nb:].reshape(N, K)

    # 2. every (i, j) dot product on the MXDot RTL
    d = MXDot(a_fmt=elem_fmt, b_fmt=elem_fmt, lanes=lanes)
    sd = sidecar(d)
    ii, jj = np.meshgrid(np.arange(M), np.arange(N), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    ea = a_c[ii].reshape(-1, lanes)
    eb = b_c[jj].reshape(-1, lanes)
    bpd = K // lanes                                     # beats per dot product
    sa = np.repeat(a_s[ii], per, axis=1).reshape(-1)     # the block's scale, every beat
    sb = np.repeat(b_s[jj], per, axis=1).reshape(-1)
    last = np.tile(np.arange(bpd) == bpd - 1, len(ii)).astype(np.int64)
    fields = {f"a{k}": ea[:, k] for k in range(lanes)}
    fields.update({f"b{k}": eb[:, k] for k in range(lanes)})
    fields.update(sa=sa, sb=sb, last=last)
    beats = pack(sd["ports"]["i"]["fields"], **fields)
    r = np.array(unpack(sd["ports"]["o"]["fields"],
                        _run(d, beats, [bool(x) for x in last], work, sim, build_root,
                             seed))["r"], dtype=np.uint32)
    gr = golden.mx_dot(a_c[ii], a_s[ii], b_c[jj], b_s[jj], elem_fmt, elem_fmt)
    dot_exact = bool(np.array_equal(r, gr))

    C = r.view(np.float32).reshape(M, N).astype(np.float64)
    ref = (A @ Bm).astype(np.float64)                    # numpy FP32 product
    rel = np.abs(C - ref) / np.abs(ref).max()
    return {"elem_fmt": elem_fmt, "M": M, "N": N, "K": K,
            "fro_rel": float(np.linalg.norm(C - ref) / np.linalg.norm(ref)),
            "max_rel": float(rel.max()), "quant_exact": quant_exact,
            "dot_exact": dot_exact}


def main():
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default="verilator")
    p.add_argument("--build", default="build")
    p.add_argument("-M", type=int, default=16)
    p.add_argument("-N", type=int, default=16)
    p.add_argument("-K", type=int, default=256)
    a = p.parse_args()
    rows = []
    for f in ("e4m3", "e5m2", "e3m2", "e2m3", "e2m1", "int8"):
        rows.append(end_to_end(f, M=a.M, N=a.N, K=a.K, sim=a.sim, build_root=a.build))
        print(rows[-1], flush=True)
    print("\n| element format | ‖C−C_fp32‖ / ‖C_fp32‖ | max error / max abs(C_fp32) | "
          "RTL = golden |\n|---|---|---|---|")
    names = {"e4m3": "MXFP8 e4m3", "e5m2": "MXFP8 e5m2", "e3m2": "MXFP6 e3m2",
             "e2m3": "MXFP6 e2m3", "e2m1": "MXFP4 e2m1", "int8": "MXINT8"}
    for r in rows:
        print(f"| {names[r['elem_fmt']]} | {r['fro_rel']:.2e} | {r['max_rel']:.2e} | "
              f"{'yes' if r['quant_exact'] and r['dot_exact'] else 'NO'} |")


if __name__ == "__main__":
    main()
