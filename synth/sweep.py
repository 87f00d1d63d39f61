"""``lpcores sweep CONFIG``: a grid of cores x parameters x targets, synthesized in
parallel, cached on disk, written as one table (CSV + Markdown), plots and a results
page (SPEC §6).

The config (TOML)
-----------------
::

    [sweep]
    title  = "lpcores results"
    output = "results.md"          # the page, relative to the config file
    assets = "results"             # CSV, per-section tables and plots go here
    intro  = "..."                 # Markdown put under the title
    append = ["../bench/sim_throughput.md"]   # Markdown files appended (if present)

    [[section]]
    title   = "FMA: element format and pipeline depth"
    text    = "..."                # Markdown above the table
    targets = ["ecp5", "generic"]  # each may be "target" or "target:device"
    pnr     = true                 # place and route where the target can (Fmax)
    dsp     = true                 # ECP5/iCE40/Xilinx/Gowin DSP inference
    seeds   = 1                    # nextpnr seeds; the best Fmax is reported
    columns = ["a_fmt", "stages"]  # parameter columns of the table
    plot    = { x = "a_fmt", series = "stages", y = ["luts", "fmax_mhz"] }
    baseline = { a_fmt = "int8" }  # optional: a "x baseline" column of LUT ratios

      [[section.run]]              # one or more; rows = each x product(grid)
      core  = "fma"
      label = "FMA"                # optional, the "label" column
      grid  = { acc_fmt = "fp32", stages = [0, 2, 4] }   # lists are crossed
      each  = [{ a_fmt = "e4m3", b_fmt = "e4m3" }, { a_fmt = "bf16", b_fmt = "bf16" }]

A section without ``[[section.run]]`` may put ``core``/``grid``/``each`` directly in
the section table.

The cache
---------
A job is (core, parameters, target, device, dsp, pnr, seeds). Its result is stored
under ``.lpcores-cache/`` next to the config, keyed by the SHA-256 of the job, the tool
versions and the **generated Verilog**: any change to a core that changes its Verilog
invalidates exactly the entries of that core. Generating Verilog costs a second or two
per configuration, so a second, cheaper map (job + tool versions + a hash of the
lpcores sources) remembers the Verilog hash; a re-run with nothing changed does no
elaboration and no synthesis and finishes in seconds.

The jobs run in a local process pool, or with ``dask=ADDRESS`` (``--dask``) on a
dask.distributed cluster's workers (``lpcores.synth.cluster``): the same job function,
the same cache (the client keeps it), the same report.

Failures (a bad parameter, a core that does not synthesize) are reported naming the
section and the entry; the sweep goes on with the others, lists every failure at the
end, marks the page, and exits with status 1.

A clock the delay model refuses (``fmax`` beyond the model for that core and
target: :class:`lpcores.errors.FmaxError`) is a result, not a failure: the row says
``refused`` with the model's fastest clock, and nothing is synthesized for it. A
section whose rows ask for ``fmax`` gets a *met* column (achieved >= asked). Columns
may also name ``est_mhz`` and ``stages_placed`` (the delay model's estimate and the
registers it placed) and, with ``seeds`` above 1, ``fmax_by_seed`` (every seed's
Fmax; the best is the row's Fmax).
"""

import csv
import hashlib
import io
import itertools
import json
import os
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from lpcores.errors import FmaxError, ParamError

from .flow import DEFAULT_DEVICE, PNR_TARGETS, SynthError, check_target, run_synth, \
    tool_versions

__all__ = ["Job", "load_config", "run_sweep", "SweepError"]

METRICS = ("luts", "ffs", "dsps", "brams", "carries", "latches", "fmax_mhz")
METRIC_LABEL = {"luts": "LUTs", "ffs": "FFs", "dsps": "DSPs", "brams": "BRAMs",
                "carries": "carry cells", "latches": "latches", "fmax_mhz": "Fmax (MHz)",
                "latency": "latency"}
SECTION_KEYS = {"title", "text", "targets", "pnr", "dsp", "seeds", "columns", "plot",
                "baseline", "run", "core", "grid", "each", "label"}
RUN_KEYS = {"core", "grid", "each", "label"}
SWEEP_KEYS = {"title", "output", "assets", "intro", "append"}


class SweepError(ParamError):
    """A config error: one sentence naming the config entry."""


@dataclass(frozen=True)
class Job:
    section: int
    entry: str                 # "section 'FMA', run 1 (fma)" for messages
    core: str
    params: tuple              # sorted (name, value) pairs
    target: str
    device: str
    dsp: bool
    pnr: bool
    seeds: int
    label: str = ""
    # a clock the delay model refuses: (the sentence, its fastest clock, its stages);
    # listed on the page as refused, never synthesized
    refused: tuple = field(default=None, compare=False)

    @property
    def key(self):
        return json.dumps([self.core, list(map(list, self.params)), self.target,
                           self.device, self.dsp, self.pnr, self.seeds])

    def describe(self):
        ps = " ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.core} {ps} on {self.target}:{self.device}"


# -- config ---------------------------------------------------------------------------

def _grid(grid, where):
    if not isinstance(grid, dict):
        raise SweepError(f"{where}: grid must be a table of parameter = value or "
                         f"[values], got {grid!r}")
    names = sorted(grid)
    values = [v if isinstance(v, list) else [v] for v in (grid[n] for n in names)]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def load_config(path):
    """Parse and check a sweep config; return (settings, sections, jobs)."""
    from lpcores.cores import CORES
    path = Path(path)
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path} is not valid TOML: {e}") from None
    unknown = set(cfg) - {"sweep", "section"}
    if unknown:
        raise SweepError(f"{path}: unknown table [{sorted(unknown)[0]}]; allowed: "
                         f"[sweep], [[section]]")
    settings = cfg.get("sweep", {})
    unknown = set(settings) - SWEEP_KEYS
    if unknown:
        raise SweepError(f"[sweep]: unknown key {sorted(unknown)[0]!r}; allowed: "
                         f"{', '.join(sorted(SWEEP_KEYS))}")
    sections = cfg.get("section", [])
    if not sections:
        raise SweepError(f"{path} has no [[section]] entries")
    jobs = []
    checked = {}
    for si, sec in enumerate(sections):
        title = sec.get("title", f"#{si + 1}")
        where = f"section '{title}'"
        unknown = set(sec) - SECTION_KEYS
        if unknown:
            raise SweepError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: "
                             f"{', '.join(sorted(SECTION_KEYS))}")
        runs = sec.get("run") or [{k: sec[k] for k in RUN_KEYS if k in sec}]
        targets = sec.get("targets", ["ecp5"])
        if isinstance(targets, str):               # one target, as a grid's scalar
            targets = [targets]
        if not (isinstance(targets, list) and targets
                and all(isinstance(t, str) for t in targets)):
            raise SweepError(f"{where}: targets must be a list of target names such as "
                             f"[\"ecp5\", \"ice40:hx8k\"], got targets = {targets!r}")
        for key in ("pnr", "dsp"):
            if not isinstance(sec.get(key, True), bool):
                raise SweepError(f"{where}: {key} must be true or false, got "
                                 f"{key} = {sec[key]!r}")
        pnr = sec.get("pnr", True)
        dsp = sec.get("dsp", True)
        seeds = sec.get("seeds", 1)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise SweepError(f"{where}: seeds must be a positive integer, got "
                             f"seeds = {seeds!r}")
        for ri, run in enumerate(runs):
            rwhere = f"{where}, run {ri + 1}"
            unknown = set(run) - RUN_KEYS
            if unknown:
                raise SweepError(f"{rwhere}: unknown key {sorted(unknown)[0]!r}; "
                                 f"allowed: {', '.join(sorted(RUN_KEYS))}")
            core = run.get("core")
            if core not in CORES:
                raise SweepError(f"{rwhere}: core must be one of {', '.join(CORES)}, "
                                 f"got core={core!r}")
            spec = CORES[core]
            allowed = {o.dest for o in spec.options}
            combos = []
            for each in run.get("each", [{}]):
                for g in _grid(run.get("grid", {}), rwhere):
                    combos.append({**g, **each})
            for params in combos:
                bad = set(params) - allowed
                if bad:
                    raise SweepError(f"{rwhere} ({core}): unknown parameter "
                                     f"{sorted(bad)[0]!r}; {core} takes "
                                     f"{', '.join(sorted(allowed))}")
                # every job's parameters are checked now, before any job runs: the
                # generator's own check names the key and the value
                for t in targets:
                    target, _, device = t.partition(":")
                    try:
                        device = check_target(target, device or None)
                    except ParamError as e:
                        raise SweepError(f"{rwhere}: {e}") from None
                    bparams = _build_params(params, target)
                    built = (core, tuple(sorted(bparams.items())))
                    if built not in checked:
                        try:
                            # built to check its parameters only, never elaborated
                            spec.build(**bparams)._MustUse__silence = True
                            checked[built] = None
                        except FmaxError as e:
                            # a clock the model refuses is a result, not a config error
                            checked[built] = (str(e), e.fastest_mhz, e.stages)
                        except ParamError as e:
                            raise SweepError(f"{rwhere} ({core}): {e}") from None
                    jobs.append(Job(si, f"{rwhere} ({core})", core,
                                    tuple(sorted(params.items())), target, device, dsp,
                                    pnr and target in PNR_TARGETS, seeds,
                                    run.get("label", ""), checked[built]))
    return settings, sections, jobs


# -- cache ----------------------------------------------------------------------------

def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def sources_hash():
    """Hash of every lpcores source file (the generators' own code)."""
    import lpcores
    root = Path(lpcores.__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("lpcores", "hdl"):
        for f in sorted((root / sub).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


class Cache:
    def __init__(self, root):
        self.root = Path(root)
        (self.root / "results").mkdir(parents=True, exist_ok=True)
        self.vmap_path = self.root / "verilog-hashes.json"
        try:
            self.vmap = json.loads(self.vmap_path.read_text())
        except (OSError, ValueError):
            self.vmap = {}

    def result_path(self, job, vhash, tools):
        return self.root / "results" / (_sha(json.dumps([job.key, vhash, tools])) + ".json")

    def save_vmap(self):
        self.vmap_path.write_text(json.dumps(self.vmap, indent=1, sort_keys=True))


# -- the work -------------------------------------------------------------------------

def _build_params(params, target):
    """A job's generator parameters: a clock-directed one (``fmax``) is planned with
    the target's delay model unless the config names the family."""
    params = dict(params)
    if params.get("fmax") is not None and "family" not in params:
        params["family"] = target
    return params


def _verilog(job, build):
    """Generate the core of ``job``; return (verilog path, sidecar dict, sha)."""
    from lpcores.cores import CORES
    from lpcores.hdl import generate
    core = CORES[job.core].build(**_build_params(job.params, job.target))
    v, j = generate(core, build / core.module_name)
    return v, json.loads(j.read_text()), _sha(v.read_text())


def _do_job(job, build, cache_root, tools, vhash_hint):
    """Runs in a worker process. Returns (job, status, result-or-message, vhash).
    ``cache_root=None``: no cache here (a dask worker that does not see the client's
    cache; the client writes the result)."""
    try:
        cache = Cache(cache_root) if cache_root is not None else None
        if vhash_hint and cache:
            p = cache.result_path(job, vhash_hint, tools)
            if p.exists():
                return job, "cached", json.loads(p.read_text()), vhash_hint
        v, side, vhash = _verilog(job, build)
        p = cache.result_path(job, vhash, tools) if cache else None
        if p and p.exists():
            return job, "cached", json.loads(p.read_text()), vhash
        wd = build / "synth" / f"{job.target}-{job.device}" / side["module"] / \
            ("dsp" if job.dsp else "nodsp")
        rep = run_synth(v, side, job.target, device=job.device, pnr=job.pnr,
                        dsp=job.dsp, seeds=job.seeds, workdir=wd)
        if p:
            p.write_text(json.dumps(rep, indent=1, sort_keys=True))
        return job, "done", rep, vhash
    except (ParamError, SynthError) as e:
        return job, "failed", str(e), None
    except Exception as e:          # a generator bug: still named, never a traceback
        return job, "failed", f"{type(e).__name__}: {e}", None


def run_sweep(config, *, jobs=None, out=None, progress=True, plots=True, dask=None):
    """Run the sweep of ``config``; write the page, table and plots. Returns a dict
    with ``rows``, ``failures``, ``counts`` ({done, cached, failed}) and ``page``.
    ``dask``: a dask.distributed scheduler address (or ``Client``) to run the jobs
    on instead of the local process pool (``lpcores.synth.cluster``)."""
    config = Path(config).resolve()
    settings, sections, joblist = load_config(config)
    client = None
    if isinstance(dask, str):
        from .cluster import connect
        client = connect(dask)              # bounded time, before any job runs
    elif dask is not None:
        client = dask
    base = config.parent
    page = Path(out) if out else base / settings.get("output", "results.md")
    assets = page.parent / settings.get("assets", "results")
    cache_root = base / ".lpcores-cache"
    build = cache_root / "build"
    cache = Cache(cache_root)
    tools = tool_versions()
    src = sources_hash()
    n = len(joblist)
    workers = jobs or os.cpu_count() or 1
    results, failures = {}, []
    counts = {"done": 0, "cached": 0, "failed": 0, "refused": 0}
    t0 = time.monotonic()

    def vkey(job):
        return _sha(json.dumps([job.key, src, tools]))

    def record(job, status, payload, vhash, i):
        counts[status] += 1
        if status == "failed":
            failures.append((job, payload))
        else:
            results[job] = payload
            if status != "refused":
                cache.vmap[vkey(job)] = vhash
        if progress:
            width = 30
            fill = int(width * i / n)
            line = f"[{'#' * fill}{'.' * (width - fill)}] {i}/{n} {status:6} " \
                   f"{job.describe()}"
            if sys.stderr.isatty():
                sys.stderr.write("\r" + line[:150].ljust(150))
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()

    # refused clocks: recorded without a worker
    done = 0
    for job in [j for j in joblist if j.refused]:
        done += 1
        msg, fastest, stages = job.refused
        record(job, "refused", {"refused": msg, "fastest_mhz": fastest,
                                "stages": stages}, None, done)
    runnable = [j for j in joblist if not j.refused]
    if client is not None:
        from .cluster import run_jobs
        try:
            run_jobs(client, runnable, cache, tools,
                     lambda job: cache.vmap.get(vkey(job)), record, start=done)
        finally:
            if isinstance(dask, str):
                client.close()
    elif workers == 1:
        for i, job in enumerate(runnable, done + 1):
            record(*_do_job(job, build, cache_root, tools, cache.vmap.get(vkey(job))), i)
    else:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = [ex.submit(_do_job, job, build, cache_root, tools,
                              cache.vmap.get(vkey(job))) for job in runnable]
            for i, fut in enumerate(as_completed(futs), done + 1):
                record(*fut.result(), i)
    cache.save_vmap()
    if progress and sys.stderr.isatty():
        sys.stderr.write("\n")

    rows = [_row(job, results[job]) for job in joblist if job in results]
    assets.mkdir(parents=True, exist_ok=True)
    _write_csv(assets / "results.csv", rows)
    figs = []
    if plots:
        for si, sec in enumerate(sections):
            if sec.get("plot"):
                srows = [r for r in rows if r["section"] == si]
                if srows:
                    figs.append((si, _plot(sec, srows, assets, si)))
    text = _page(settings, sections, rows, failures, dict(figs), page, assets, tools)
    page.write_text(text)
    elapsed = time.monotonic() - t0
    if progress:
        print(f"{n} jobs: {counts['done']} synthesized, {counts['cached']} from cache, "
              f"{counts['refused']} refused by the delay model, {counts['failed']} "
              f"failed, in {elapsed:.1f} s; wrote {page}",
              file=sys.stderr)
        for job, msg in failures:
            print(f"FAILED {job.entry}, {job.describe()}: {msg}", file=sys.stderr)
    return {"rows": rows, "failures": failures, "counts": counts, "page": page}


def _row(job, rep):
    r = {"section": job.section, "label": job.label, "core": job.core,
         "module": rep.get("module"), "target": job.target, "device": job.device,
         "dsp": job.dsp, **dict(job.params)}
    if "refused" in rep:
        # the asked clock is beyond the delay model: no netlist; the row says so
        stages = f", {rep['stages']} stages" if rep.get("stages") else ""
        r["fmax_mhz"] = f"refused: model's fastest ~{rep['fastest_mhz']:.0f}{stages}"
        r["met"] = "refused"
        return r
    r.update({k: rep["resources"][k] for k in METRICS if k in rep["resources"]})
    r["fmax_mhz"] = rep.get("fmax_mhz")
    if rep.get("does_not_fit"):
        r["fmax_mhz"] = f"does not fit {rep['does_not_fit']}"
    r["latency"] = rep.get("latency_formula") or rep.get("latency")
    r["beats_per_result"] = rep.get("beats_per_result")
    r["seeds"] = rep.get("seeds", 1) if job.pnr else None
    by_seed = rep.get("fmax_by_seed") or {}
    if len(by_seed) > 1:                # every seed's Fmax, the best is fmax_mhz
        r["fmax_by_seed"] = " / ".join(f"{by_seed[k]:.1f}"
                                       for k in sorted(by_seed, key=int))
    r["est_mhz"] = (rep.get("timing") or {}).get("estimate_mhz")    # the delay model's
    r["stages_placed"] = len((rep.get("timing") or {}).get("cuts") or []) or None
    asked = dict(job.params).get("fmax")
    if asked is not None and isinstance(r["fmax_mhz"], (int, float)):
        r["met"] = "yes" if r["fmax_mhz"] >= asked else "no"     # achieved >= asked
    return r


def _write_csv(path, rows):
    cols = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    path.write_text(buf.getvalue())


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _matches(row, cond):
    return all(row.get(k) == v for k, v in cond.items())


def _table(sec, rows):
    cols = list(sec.get("columns") or [])
    if any(r["label"] for r in rows):
        cols = ["label"] + [c for c in cols if c != "label"]
    multi_target = len({(r["target"], r["device"]) for r in rows}) > 1
    head = cols + (["target"] if multi_target else []) + \
        ["LUTs", "FFs", "DSPs", "BRAMs", "Fmax (MHz)", "latency"]
    met = any(r.get("met") for r in rows)
    if met:
        head.append("met")              # achieved >= the asked fmax
    base = sec.get("baseline")
    if base:
        head.append("LUTs vs baseline")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_fmt(r.get(c)) for c in cols]
        if multi_target:
            cells.append(f"{r['target']} {r['device']}" + ("" if r["dsp"] else " no-DSP"))
        cells += [_fmt(r.get(k)) for k in ("luts", "ffs", "dsps", "brams", "fmax_mhz",
                                             "latency")]
        if met:
            cells.append(_fmt(r.get("met")))
        if base:
            ref = _baseline_row(r, rows, base, cols)
            cells.append(f"{r['luts'] / ref['luts']:.2f}x" if ref and ref["luts"] else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _baseline_row(r, rows, base, cols):
    # the baseline row: same target and same values in every shown column that the
    # baseline condition does not name
    for cand in rows:
        if not _matches(cand, base):
            continue
        if (cand["target"], cand["device"], cand["dsp"]) != \
                (r["target"], r["device"], r["dsp"]):
            continue
        # a column that only one of the two rows has (NMDot's n, Dot's lanes) is
        # not compared
        if all(cand.get(c) == r.get(c) for c in cols if c not in base and c != "label"
               and cand.get(c) not in (None, "") and r.get(c) not in (None, "")):
            return cand
    return None


def _plot(sec, rows, assets, si):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matplotlib.rcParams["svg.hashsalt"] = "lpcores"      # deterministic SVG ids
    spec = sec["plot"]
    x, series = spec.get("x"), spec.get("series")
    ys = spec.get("y", ["luts", "fmax_mhz"])
    xs = list(dict.fromkeys(_fmt(r.get(x)) for r in rows))
    ss = list(dict.fromkeys(_fmt(r.get(series)) for r in rows)) if series else ["all"]
    fig, axes = plt.subplots(1, len(ys), figsize=(4.2 * len(ys), 3.4), squeeze=False)
    wdt = 0.8 / len(ss)
    for ax, y in zip(axes[0], ys):
        for k, s in enumerate(ss):
            vals = []
            for xv in xs:
                hit = [r for r in rows if _fmt(r.get(x)) == xv and
                       (not series or _fmt(r.get(series)) == s)]
                v = hit[0].get(y) if hit else None
                vals.append(v if isinstance(v, (int, float)) else 0)
            ax.bar([i + k * wdt for i in range(len(xs))], vals, wdt,
                   label=f"{series}={s}" if series else None)
        ax.set_xticks([i + wdt * (len(ss) - 1) / 2 for i in range(len(xs))])
        ax.set_xticklabels(xs, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(METRIC_LABEL.get(y, y))
        ax.grid(axis="y", alpha=0.3)
    if series:
        axes[0][0].legend(fontsize=7)
    fig.suptitle(sec.get("title", ""), fontsize=10)
    fig.tight_layout()
    stem = assets / f"section{si + 1}"
    fig.savefig(f"{stem}.png", dpi=110, metadata={"Software": None})
    fig.savefig(f"{stem}.svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return stem


def _page(settings, sections, rows, failures, figs, page, assets, tools):
    rel = os.path.relpath(assets, page.parent)
    out = [f"# {settings.get('title', 'lpcores results')}", ""]
    out += ["<!-- generated by `lpcores sweep`; edit the sweep config, not this page -->",
            ""]
    if settings.get("intro"):
        out += [settings["intro"].strip(), ""]
    if failures:
        out += ["**Incomplete: some configurations failed and are missing below:**", ""]
        out += [f"- {job.entry}, {job.describe()}: {msg}" for job, msg in failures]
        out.append("")
    for si, sec in enumerate(sections):
        out += [f"## {sec.get('title', '')}", ""]
        if sec.get("text"):
            out += [sec["text"].strip(), ""]
        srows = [r for r in rows if r["section"] == si]
        if not srows:
            out += ["*(no results)*", ""]
            continue
        out += [_table(sec, srows), ""]
        if si in figs:
            name = Path(figs[si]).name
            out += [f"![{sec.get('title', '')}]({rel}/{name}.svg)", ""]
    for extra in settings.get("append", []):
        f = (page.parent / extra)
        if f.exists():
            out += [f.read_text().strip(), ""]
        else:
            out += [f"*({extra} not found: run the benchmark that writes it)*", ""]
    out += ["## Tools", "", ", ".join(f"{k} {v}" for k, v in tools.items()) + ".", "",
            f"The full table: [{rel}/results.csv]({rel}/results.csv).", ""]
    return "\n".join(out)
