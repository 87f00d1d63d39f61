"""``lpcores sweep``: the cache is honest (a changed core is re-synthesized, nothing
else is), bad configs name their entry, and one failure does not sink the sweep."""

import pytest

import lpcores.hdl.base as base
from lpcores.synth import sweep
from lpcores.synth.sweep import SweepError, load_config, run_sweep

pytestmark = pytest.mark.synth

CONFIG = """
[sweep]
title = "tiny"
output = "page.md"

[[section]]
title = "converters"
targets = ["generic"]
columns = ["in_fmt", "out_fmt"]
plot = { x = "out_fmt", y = ["luts"] }
core = "convert"
grid = { in_fmt = "bf16", out_fmt = ["e4m3", "e5m2"] }
"""


def test_cache_follows_the_generated_verilog(tmp_path, monkeypatch):
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG)
    first = run_sweep(cfg, jobs=1, progress=False)
    assert first["counts"] == {"done": 2, "cached": 0, "failed": 0, "refused": 0}
    page = (tmp_path / "page.md").read_text()
    assert "| bf16 | e4m3 |" in page and "| bf16 | e5m2 |" in page
    assert (tmp_path / "results" / "section1.svg").exists()
    assert (tmp_path / "results" / "results.csv").read_text().count("\n") == 3

    again = run_sweep(cfg, jobs=1, progress=False)
    assert again["counts"] == {"done": 0, "cached": 2, "failed": 0, "refused": 0}
    assert again["rows"] == first["rows"]

    # the sources change but the Verilog does not: still cached
    monkeypatch.setattr(sweep, "sources_hash", lambda: "edited")
    assert run_sweep(cfg, jobs=1, progress=False)["counts"]["cached"] == 2

    # a change to the generated Verilog of the core invalidates its entries
    orig = base.verilog_text
    monkeypatch.setattr(sweep, "sources_hash", lambda: "edited again")
    monkeypatch.setattr(base, "verilog_text", lambda core: orig(core) + "// changed\n")
    assert run_sweep(cfg, jobs=1, progress=False)["counts"] == \
        {"done": 2, "cached": 0, "failed": 0, "refused": 0}


def test_a_failing_entry_is_listed_and_the_rest_go_on(tmp_path, monkeypatch):
    # a job that fails when it runs (bad parameters are caught before any job runs:
    # test_bad_values_are_found_before_any_job_runs)
    from lpcores.synth.flow import SynthError
    orig = sweep.run_synth

    def flaky(v, side, target, **kw):
        if side["params"]["in_fmt"] == "e4m3" and side["params"]["out_fmt"] == "e5m2":
            raise SynthError("Yosys stopped: out of memory")
        return orig(v, side, target, **kw)

    monkeypatch.setattr(sweep, "run_synth", flaky)
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG.replace('in_fmt = "bf16"', 'in_fmt = ["bf16", "e4m3"]')
                   .replace('out_fmt = ["e4m3", "e5m2"]', 'out_fmt = ["fp16", "e5m2"]'))
    res = run_sweep(cfg, jobs=1, progress=False)
    assert res["counts"]["failed"] == 1 and len(res["rows"]) == 3
    (job, msg), = res["failures"]
    assert job.entry == "section 'converters', run 1 (convert)"
    assert "Yosys stopped: out of memory" in msg
    page = (tmp_path / "page.md").read_text()
    assert "**Incomplete" in page and "Yosys stopped: out of memory" in page


def test_a_clock_the_model_refuses_is_a_row_not_a_failure(tmp_path, monkeypatch):
    # fmax=400 is beyond the delay model for this convert: the row says so, with the
    # model's fastest clock; nothing is synthesized for it; fmax=100 is synthesized
    from lpcores.cores import CORES
    from lpcores.errors import FmaxError
    with pytest.raises(FmaxError) as e:
        CORES["convert"].build(in_fmt="bf16", out_fmt="e4m3", fmax=400.0,
                               family="generic")
    fastest = e.value.fastest_mhz
    assert 100 < fastest < 400 and e.value.stages >= 1
    ran = []
    orig = sweep.run_synth
    monkeypatch.setattr(sweep, "run_synth",
                        lambda v, side, *a, **kw: ran.append(side["params"]["fmax"])
                        or orig(v, side, *a, **kw))
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG.replace('out_fmt = ["e4m3", "e5m2"]',
                                  'out_fmt = "e4m3", fmax = [100.0, 400.0]'))
    res = run_sweep(cfg, jobs=1, progress=False)
    assert res["counts"] == {"done": 1, "cached": 0, "failed": 0, "refused": 1}
    assert ran == [100.0] and not res["failures"]
    refused, = [r for r in res["rows"] if r["fmax"] == 400.0]
    assert refused["met"] == "refused"
    assert refused["fmax_mhz"] == f"refused: model's fastest ~{fastest:.0f}, " \
        f"{e.value.stages} stages"
    page = (tmp_path / "page.md").read_text()
    assert "**Incomplete" not in page and "| met |" in page
    assert f"refused: model's fastest ~{fastest:.0f}" in page


@pytest.mark.parametrize("edit,msg", [
    (('in_fmt = "bf16"', 'in_fmt = ["bf16", "e4m3"]'),
     "section 'converters', run 1 (convert): out_fmt must differ from in_fmt, got "
     "in_fmt='e4m3', out_fmt='e4m3'"),
    (('out_fmt = ["e4m3", "e5m2"]', 'out_fmt = ["e4m3", "e4mm3"]'),
     "section 'converters', run 1 (convert): out_fmt must be one of fp32, fp16, bf16, "
     "e5m2, e4m3, e3m2, e2m3, e2m1, got out_fmt='e4mm3'"),
    (('grid = {', 'grid = { stages = "two",'),
     "section 'converters', run 1 (convert): stages must be an integer, not 'two'"),
    (('output = "page.md"', 'output = "page.md"\noutptu = "x.md"'),
     "[sweep]: unknown key 'outptu'; allowed: append, assets, intro, output, title"),
    (('targets = ["generic"]', 'targets = [1]'),
     "section 'converters': targets must be a list of target names such as "
     "[\"ecp5\", \"ice40:hx8k\"], got targets = [1]"),
    (('targets = ["generic"]', 'targets = ["generic"]\nseeds = 0'),
     "section 'converters': seeds must be a positive integer, got seeds = 0"),
    (('targets = ["generic"]', 'targets = ["generic"]\npnr = "no"'),
     "section 'converters': pnr must be true or false, got pnr = 'no'"),
])
def test_bad_values_are_found_before_any_job_runs(tmp_path, edit, msg, monkeypatch):
    def never(*a, **kw):
        raise AssertionError("a job ran before the config was checked")
    monkeypatch.setattr(sweep, "run_synth", never)
    cfg = tmp_path / "s.toml"
    text = CONFIG.replace(*edit)
    assert text != CONFIG
    cfg.write_text(text)
    with pytest.raises(SweepError) as e:
        run_sweep(cfg, jobs=1, progress=False)
    assert str(e.value) == msg
    assert not (tmp_path / "page.md").exists()


def test_a_single_target_string_is_one_target(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG.replace('targets = ["generic"]', 'targets = "ecp5"'))
    _, _, jobs = load_config(cfg)
    assert {(j.target, j.device) for j in jobs} == {("ecp5", "25k")}


@pytest.mark.parametrize("edit,msg", [
    (('core = "convert"', 'core = "fft"'),
     "section 'converters', run 1: core must be one of"),
    (('grid = {', 'grid = { width = 3,'),
     "section 'converters', run 1 (convert): unknown parameter 'width'; convert takes"),
    (('targets = ["generic"]', 'targets = ["ecp5:12k"]'),
     "section 'converters', run 1: --device for target ecp5 must be one of 25k, 45k, "
     "85k, got --device=12k"),
    (('columns', 'colums'), "section 'converters': unknown key 'colums'"),
])
def test_bad_config_names_the_entry(tmp_path, edit, msg):
    cfg = tmp_path / "s.toml"
    cfg.write_text(CONFIG.replace(*edit))
    with pytest.raises(SweepError) as e:
        load_config(cfg)
    assert msg in str(e.value)
