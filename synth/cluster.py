"""``lpcores sweep CONFIG --dask tcp://HOST:PORT``: the sweep's jobs on a
dask.distributed cluster (SPEC §6; the optional extra ``lpcores[cluster]``).

The workers run the same job function as the local process pool
(:func:`lpcores.synth.sweep._do_job`), so a result is the same either way. The client
keeps the cache: a job whose result it already holds is not sent; every result comes
back to the client, which writes it into the cache next to the config. The workers do
not need to share the client's filesystem; a worker that sees the cache directory at
the same path reads it too (a job whose Verilog is unchanged is not synthesized
again) and writes its results there, as a local worker does.

Before any job runs, :func:`connect` reaches the scheduler within a bounded time,
waits (as long) for a worker, and checks that every worker runs the same lpcores
sources and tool versions as the client (the cache key holds the client's): each
failure is one sentence. A job that fails on a worker is reported like a local one;
a worker that dies or cannot run the job names the dask error.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

from lpcores.errors import ParamError

__all__ = ["CONNECT_TIMEOUT", "connect", "run_jobs"]

CONNECT_TIMEOUT = 10          # seconds: reach the scheduler, then find a worker


def _identity():
    """Runs on each worker: what the cache keys depend on."""
    from .flow import tool_versions
    from .sweep import sources_hash
    return tool_versions(), sources_hash()


def connect(address, timeout=CONNECT_TIMEOUT):
    """A dask ``Client`` of the scheduler at ``address``, checked; ParamError (one
    sentence) when it cannot be used."""
    try:
        from distributed import Client
    except ImportError:
        raise ParamError("--dask needs the dask.distributed package, which is not "
                         "installed (pip install 'lpcores[cluster]')") from None
    where = f"--dask={address}"
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except ValueError:
        raise ParamError(f"--dask must be a scheduler address such as "
                         f"tcp://host:8786, got {where}") from None
    except (OSError, TimeoutError):
        raise ParamError(f"cannot reach the dask scheduler at {address} within "
                         f"{timeout} s (is a scheduler running there, and the port "
                         f"open?)") from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            raise ParamError(f"the dask scheduler at {address} has no workers (waited "
                             f"{timeout} s)") from None
        from .flow import tool_versions
        from .sweep import sources_hash
        mine = (tool_versions(), sources_hash())
        try:
            theirs = client.run(_identity)
        except Exception as e:
            raise ParamError(f"a dask worker at {address} cannot run lpcores "
                             f"({type(e).__name__}: {e}); install the same lpcores "
                             f"on the workers") from None
        for worker, (tools, src) in sorted(theirs.items()):
            tools = dict(tools)
            diff = [f"{k} {tools.get(k)} there, {v} here" for k, v in mine[0].items()
                    if tools.get(k) != v]
            if diff or src != mine[1]:
                what = "; ".join(diff) or "the lpcores sources differ"
                raise ParamError(f"dask worker {worker} runs other lpcores sources or "
                                 f"tools than this client ({what}); install the same "
                                 f"lpcores on the workers")
    except BaseException:
        client.close()
        raise
    return client


def _sees(root):
    """Does this worker see the client's cache directory (a shared filesystem)?"""
    return root.is_dir()


def _remote_job(job, cache_root, tools):
    """Runs on a worker: the local job function, with the cache if the worker sees
    it, in a scratch build directory otherwise."""
    from .sweep import _do_job
    root = Path(cache_root)
    if _sees(root):
        return _do_job(job, root / "build", root, tools, None)
    build = Path(tempfile.mkdtemp(prefix="lpcores-sweep-"))
    try:
        return _do_job(job, build, None, tools, None)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def run_jobs(client, joblist, cache, tools, hint, record, start=0):
    """Run ``joblist`` on the cluster; ``record(job, status, payload, vhash, i)`` as
    each finishes (``hint(job)``: the Verilog hash the client remembers; ``i``
    counts on from ``start``)."""
    from distributed import as_completed
    i = start
    pending = []
    for job in joblist:
        h = hint(job)
        p = cache.result_path(job, h, tools) if h else None
        if p is not None and p.exists():
            i += 1
            record(job, "cached", json.loads(p.read_text()), h, i)
        else:
            pending.append(job)
    futs = {client.submit(_remote_job, job, str(cache.root), tools, pure=False): job
            for job in pending}
    for fut in as_completed(list(futs), loop=client.loop):
        job = futs[fut]
        try:
            _, status, payload, vhash = fut.result()
        except Exception as e:          # the worker died or could not run the job
            status, payload, vhash = "failed", \
                f"on the dask cluster: {type(e).__name__}: {e}", None
        if status in ("done", "cached"):
            p = cache.result_path(job, vhash, tools)
            if not p.exists():              # the client writes the cache
                tmp = p.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(payload, indent=1, sort_keys=True))
                tmp.replace(p)
        i += 1
        record(job, status, payload, vhash, i)
