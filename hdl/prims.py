"""Vendor primitives the generators instantiate, their timing and simulation models.

Yosys' ``synth_ecp5`` maps an inferred multiply to a MULT18X18D but never packs
fabric registers into it, so a pipeline stage holding one is capped near 140 MHz
(FABRIC.md: 6.9-7.1 ns with the registers around it). The primitive has its own
input and output registers, between which nextpnr does not time the array (the
sysDSP's datasheet Fmax is the bound there). :func:`dsp_products` builds products on
the primitive with both registers when a core is planned for a clock the inferred
multiply cannot meet (and only then: below that clock the netlist is the inferred
one, one register shorter).

The two registers are two cut points the plan always selects (``<name>.in``,
``<name>.out``: :meth:`.base.Pipeline.cut` with ``force=True``): the operands'
register is the DSP's input register and the product's is its output register, both
clocked by ``clk`` and enabled by the pipeline's ``advance``; everything else that
travels with the beat (the valid bit, carried values) gets fabric registers at the
same points, so the stall-all scheme is unchanged. The registers hold data only
(reset unused): a beat's valid bit decides.

Simulation: the generated Verilog instantiates ``MULT18X18D``, which FPGA synthesis
(Yosys, Diamond) supplies; simulators get :data:`ECP5_SIM_FILE`, a behavioural model
of the configuration instantiated here, which :func:`.base.generate` writes beside
the core and lists in the sidecar's ``sim_sources`` (never read it into synthesis).
"""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, signed

__all__ = ["ECP5_SIM_FILE", "LUTRAM_MAX_BITS", "buffer_attrs", "dsp_products",
           "inferred_dsp_fmax", "sim_files", "sim_model", "use_registered_dsp"]

ECP5_SIM_FILE = "lpcores_ecp5_sim.v"

# the registered primitive, per family: (name, operand bits, delay out of its output
# register beyond a fabric register's, ns). ECP5: the product out of the output
# register and into the fabric measured 2.6 ns register to register (FABRIC.md).
REGISTERED_DSP = {
    "ecp5": ("MULT18X18D", 18, 1.4),
}


def inferred_dsp_fmax(family):
    """The fastest clock (MHz) at which the delay model keeps an inferred multiply
    (with fabric registers) in one stage; above it products use the registered
    primitive."""
    from .timing import fabric
    fab = fabric(family)
    return 1000.0 / (fab.reg + fab.dsp_mul)


def use_registered_dsp(pipe, wa, wb):
    """Whether a ``wa`` x ``wb`` product on ``pipe`` goes on a registered primitive:
    the core is planned for a clock (``fmax``) on a family that has one, the operands
    fit one, and the inferred multiply with its fabric registers does not fit the
    period."""
    if pipe is None or pipe.fab.name not in REGISTERED_DSP:
        return False
    fmax = getattr(pipe.core, "_pipe_fmax", None)
    _, width, _ = REGISTERED_DSP[pipe.fab.name]
    if fmax is None or max(wa, wb) > width:
        return False
    return fmax > inferred_dsp_fmax(pipe.fab.name)


#: the largest buffer (bits) :func:`buffer_attrs` moves from block RAM into LUT RAM
LUTRAM_MAX_BITS = 4096


def buffer_attrs(family, fmax, bits):
    """Attributes of a core's sync-read buffer (``amaranth.lib.memory.Memory``):
    ``ram_style = "distributed"`` (LUT RAM, its read registered in the fabric) when
    the core is planned for a clock the family's block RAM read does not meet
    (``Fabric.bram_out``: Yosys leaves the RAM's output register unused) and the
    buffer holds at most :data:`LUTRAM_MAX_BITS`; otherwise none (block RAM where
    synthesis chooses it). A larger buffer keeps block RAM and its read is the
    limit (docs/timing.md)."""
    from .timing import fabric
    if fmax is None:
        return {}
    fab = fabric(family)
    if fab.bram_out is None or 1000.0 / fmax >= fab.reg + fab.bram_out:
        return {}
    return {"ram_style": "distributed"} if bits <= LUTRAM_MAX_BITS else {}


def dsp_products(m, pairs, pipe, name="dsp", between=None):
    """Signed products of ``pairs`` of signed operands, each on its own registered
    primitive (see the module docstring): two forced cut points, ``<name>.in`` and
    ``<name>.out``, between which the beat spends two cycles; returns the products
    (``signed(wa + wb)``), read from the primitives' output registers.

    ``between``: a function called between the two cut points (what the caller
    carries is registered at ``.in`` then), building and charging logic beside the
    primitives' array; it returns values, registered at ``.out`` and returned too:
    ``(products, values)``."""
    prim, width, out_ns = REGISTERED_DSP[pipe.fab.name]
    pipe.core.primitives = frozenset(getattr(pipe.core, "primitives", ())) | {prim}
    outs = []
    for k, (a, b) in enumerate(pairs):
        wa, wb = len(a), len(b)
        p = Signal(36, name=f"{name}{k}_p")
        ports = {"i_CLK0": ClockSignal(), "i_CE0": pipe.advance, "i_RST0": Const(0, 1),
                 "i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1)}
        for j in (1, 2, 3):
            ports.update({f"i_CLK{j}": Const(0, 1), f"i_CE{j}": Const(0, 1),
                          f"i_RST{j}": Const(0, 1)})
        ax, bx = a.as_signed(), b.as_signed()
        for j in range(width):
            ports[f"i_A{j}"] = ax[min(j, wa - 1)]       # sign-extended to 18 bits
            ports[f"i_B{j}"] = bx[min(j, wb - 1)]
        for j in range(36):
            ports[f"o_P{j}"] = p[j]
        m.submodules[f"{name}{k}"] = Instance(
            prim,
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0",
            p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="CLK0",
            p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC",
            **ports)
        q = Signal(signed(wa + wb), name=f"{name}{k}_q")
        m.d.comb += q.eq(p[:wa + wb])
        outs.append(q)
    pipe.cut(f"{name}.in", force=True)
    if between is None:
        pipe.cut(f"{name}.out", force=True)
        pipe.charge(out_ns)
        return outs
    with pipe.carry(*between()) as cb:
        pipe.cut(f"{name}.out", force=True)
    pipe.charge(out_ns)
    return outs, cb.values


def sim_model(prim):
    """Verilog text of the behavioural model of ``prim`` as :func:`dsp_products`
    configures it (the registers named by its parameters, clock 0 and its enable,
    signed operands); other configurations stop the simulation with a message."""
    assert prim == "MULT18X18D", prim
    a = ", ".join(f"A{j}" for j in range(18))
    b = ", ".join(f"B{j}" for j in range(18))
    p = ", ".join(f"P{j}" for j in range(36))
    p_assign = "\n".join(f"    assign P{j} = p_r[{j}];" for j in range(36))
    return f"""\
/* MULT18X18D: simulation model of the configuration lpcores instantiates (input and
   output registers on CLK0/CE0, no pipeline register, signed operands). For
   simulation only: FPGA synthesis supplies the primitive. Generated by lpcores. */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off DECLFILENAME */
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "CLK0",
    parameter REG_INPUTB_CLK = "CLK0",
    parameter REG_PIPELINE_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "CLK0",
    parameter CLK0_DIV = "ENABLED",
    parameter GSR = "ENABLED",
    parameter RESETMODE = "SYNC"
) (
    input {a},
    input {b},
    input SIGNEDA, SIGNEDB,
    input CLK0, CLK1, CLK2, CLK3,
    input CE0, CE1, CE2, CE3,
    input RST0, RST1, RST2, RST3,
    output {p}
);
    wire [17:0] a = {{{", ".join(f"A{j}" for j in range(17, -1, -1))}}};
    wire [17:0] b = {{{", ".join(f"B{j}" for j in range(17, -1, -1))}}};
    reg [17:0] a_r;
    reg [17:0] b_r;
    reg sa_r;
    reg sb_r;
    reg [35:0] p_r;
    wire [35:0] ax = {{{{18{{sa_r & a_r[17]}}}}, a_r}};
    wire [35:0] bx = {{{{18{{sb_r & b_r[17]}}}}, b_r}};
    wire [35:0] prod = ax * bx;
    initial begin
        a_r = 18'd0;
        b_r = 18'd0;
        sa_r = 1'b0;
        sb_r = 1'b0;
        p_r = 36'd0;
        if (REG_INPUTA_CLK != "CLK0" || REG_INPUTB_CLK != "CLK0"
                || REG_PIPELINE_CLK != "NONE" || REG_OUTPUT_CLK != "CLK0") begin
            $display("MULT18X18D model: only the configuration lpcores instantiates");
            $finish;
        end
    end
    always @(posedge CLK0) begin
        if (RST0) begin
            a_r <= 18'd0;
            b_r <= 18'd0;
            sa_r <= 1'b0;
            sb_r <= 1'b0;
            p_r <= 36'd0;
        end else if (CE0) begin
            a_r <= a;
            b_r <= b;
            sa_r <= SIGNEDA;
            sb_r <= SIGNEDB;
            p_r <= prod;
        end
    end
{p_assign}
endmodule
/* verilator lint_on DECLFILENAME */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
"""


def _primitives(core, seen):
    """The primitives ``core`` and the sub-cores it composes instantiate."""
    if id(core) in seen:
        return set()
    seen.add(id(core))
    found = set(getattr(core, "primitives", ()))
    for v in vars(core).values():
        for sub in (v if isinstance(v, (list, tuple)) else (v,)):   # IterNorm's lanes
            if hasattr(sub, "module_name") and hasattr(sub, "in_fields"):   # a sub-core
                found |= _primitives(sub, seen)
    return found


def sim_files(core):
    """``{file name: text}`` of the simulation models ``core``'s Verilog needs."""
    prims = sorted(_primitives(core, set()))
    if not prims:
        return {}
    return {ECP5_SIM_FILE: "".join(sim_model(p) for p in prims)}
