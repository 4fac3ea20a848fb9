"""cpython.interpreters: subinterpreters with their own GIL, tasks through their queues or
channels. The checksum ports are checked here under this interpreter; the model itself runs under
pyenv's 3.13 (test.support.interpreters) and 3.12 (_xxsubinterpreters) with the modules
scripts/python_matrix.py builds (build/python-3.13, build/python-3.12), in a subprocess, and is
skipped with the reason where those are absent."""

import glob
import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

import concbench
from concbench import _concbench as _c
from concbench import models
from concbench import workloads as wl
from concbench.models import interpreters as interp_model

MODEL = "cpython.interpreters"


def test_checksum_ports_are_bit_identical_to_concbench():
    ns = interp_model.worker_namespace()
    rng = random.Random(17)
    edge = [0, 1, (1 << 63), (1 << 64) - 1, 0x9e3779b97f4a7c15]
    for i in range(4000):
        a = edge[i % 5] if i < 25 else rng.getrandbits(64)
        b = edge[(i // 5) % 5] if i < 25 else rng.getrandbits(64)
        assert ns["fold"](a, b) == _c.fold(a, b)
        assert ns["seal"](a, b) == _c.seal(a, b)
        assert ns["round_nonce"](a, b % 100000) == _c.round_nonce(a, b % 100000)
        assert ns["step_seed"](a, i % 64) == _c.step_seed(a, i % 64)
        data = rng.randbytes(i % 67)
        assert ns["hash_bytes"](data, a) == _c.hash_bytes(data, a), len(data)
        assert ns["hash_bytes"](data) == _c.hash_bytes(data)


class _Never:
    @staticmethod
    def is_set():
        return False


def test_worker_execute_matches_workloads_execute():
    ns = interp_model.worker_namespace()
    st = wl.BatchState(_Never, None)
    rng = random.Random(3)
    for i in range(40):
        seed = rng.getrandbits(64)
        steps = [("cpu", False, "spin", 0, rng.randrange(0, 4), 0, 0),
                 ("cpu", False, "pidigits", 0, rng.randrange(1, 30), 0, 0),
                 ("sleep", False, "", 0, 0, rng.randrange(0, 20000), 0)][: 1 + i % 3]
        task = ("t", seed, rng.randbytes(i), tuple(steps[:: 1 if i % 2 else -1]))
        nonce = rng.getrandbits(64)
        assert ns["execute"](task, nonce) == wl.execute(task, 0, st, nonce)
    with pytest.raises(ValueError, match="native"):
        ns["execute"](("t", 1, b"", (("cpu", True, "spin", 0, 1, 0, 0),)), 0)


def test_unavailable_with_one_line_where_there_is_no_pep734_api():
    if interp_model.UNAVAILABLE is None:
        assert MODEL in models.names()
        return
    assert MODEL not in models.names()
    why = models.unavailable()[MODEL]
    assert why == interp_model.UNAVAILABLE and "\n" not in why
    assert "%d.%d" % sys.version_info[:2] in why
    assert concbench.python_context()["models_unavailable"][MODEL] == why
    r = concbench.run({"suite": "smoke", "workloads": ["cpu.spin"], "models": ["cpython.serial"],
                       "workers": [1], "repetitions": 1})
    assert r["results"][0]["status"] == "ok"  # the other models are not affected


CHECK = textwrap.dedent('''
    import json, sys
    import concbench
    from concbench import _concbench as _c
    out = {"unavailable": concbench.models.unavailable()}
    def run(models, workers, **kw):
        cfg = {"suite": "smoke", "workloads": kw.pop("workloads"), "models": models,
               "workers": workers, "repetitions": 1, "params": kw.pop("params", {})}
        cfg.update(kw)
        return concbench.run(cfg)["results"]
    cells = run(["cpython.interpreters"], [1, 2],
                workloads=["cpu.spin", "cpu.pidigits", "io.sleep", "overhead.noop"])
    out["cells"] = [(c["workload"], c["workers"], c["status"], c["error"],
                     c["repetitions"][0]["model_metrics"] if c["repetitions"] else None)
                    for c in cells]
    out["attribution"] = [(c["workload"], c["workers"], c["attribution"]) for c in cells]
    # The runner's timeout reaches tasks running inside the interpreters (their control queue).
    cells = run(["cpython.interpreters"], [2], workloads=["io.sleep"], timeout=0.5,
                params={"tasks": "4", "sleep_us": "3000000"})
    out["timeout"] = [(c["status"], c["error"]) for c in cells]
    try:  # user functions are not run inside interpreters
        concbench.bench(abs, [1], models=["cpython.interpreters"], workers=(1,),
                        repetitions=1, min_time=0)
        out["bench"] = "accepted"
    except concbench.UsageError as e:
        out["bench"] = str(e)
    out["idle"] = _c.parallel_capacity(2, 0.05)
    if out["idle"] >= 1.8:
        cells = run(["cpython.serial", "cpython.threading", "cpython.interpreters"], [2],
                    workloads=["cpu.spin"], params={"tasks": "16", "units": "100"},
                    repetitions=3, min_time=0.3)
        out["speedup"] = {c["model"]: c["summary"]["speedup_vs_serial"] for c in cells}
    print(json.dumps(out))
''')


def _interpreter(version):
    """(python, PYTHONPATH) of pyenv's CPython `version` and the module built for it."""
    build = os.environ.get("CONCBENCH_BUILD_DIR", "build")
    path = os.path.join(build, "python-" + version.rsplit(".", 1)[0])
    if not glob.glob(os.path.join(path, "concbench", "_concbench*.so")):
        pytest.skip("no module built for CPython %s in %s (cmake "
                    "-DCONCBENCH_PYTHON_EXECUTABLES=<pyenv's python3>, target "
                    "concbench_python_matrix)" % (version, path))
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("pyenv is not installed: no CPython %s to run the model under" % version)
    exe = os.path.join(root, "versions", version, "bin", "python3")
    if not os.path.exists(exe):
        pytest.skip("pyenv has no CPython %s (%s)" % (version, exe))
    return exe, os.path.abspath(path)


@pytest.mark.parametrize("version,api", [("3.13.0", "test.support.interpreters"),
                                         ("3.12.1", "_xxsubinterpreters+_xxinterpchannels")])
def test_every_workload_verifies_and_cpu_spin_scales(version, api):
    exe, path = _interpreter(version)
    env = dict(os.environ, PYTHONPATH=path)
    p = subprocess.run([exe, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert MODEL not in out["unavailable"]
    seen = {(w, n) for w, n, _, _, _ in out["cells"]}
    assert seen == {(w, n) for w in ("cpu.spin", "cpu.pidigits", "io.sleep", "overhead.noop")
                    for n in (1, 2)}
    for w, n, status, error, mm in out["cells"]:
        assert status == "ok", (w, n, error)
        assert len(mm["startup_ns"]) == n and min(mm["startup_ns"]) > 0
        assert mm["crossing"]["bytes_in"] > 0 and mm["crossing"]["bytes_out"] > 0
        assert mm["api"] == api
    # Each interpreter's thread, read from outside, and the caller that feeds them: the parts
    # add up, and each interpreter unmarshals what it is sent.
    for w, n, a in out["attribution"]:
        assert "unavailable" not in a, (w, n, a)
        kinds = [x["kind"] for x in a["workers"]]
        assert kinds.count("interpreter") == n and kinds.count("parent") == 1, (w, n, kinds)
        for x in a["workers"]:
            p = x["parts_ns"]
            assert abs(p["unattributed"]) <= 0.1 * x["wall_ns"] + p["runqueue"], (w, n, x)
            if x["kind"] == "interpreter":
                assert x["tasks"] > 0 and p["deserialize"] > 0, (w, n, x)
        if w == "io.sleep":
            assert a["dominant"] == "io_wait", (w, a["total"])
    assert "cannot run under the selected models" in out["bench"]
    ((status, error),) = out["timeout"]
    assert status == "timed_out" and "abandoned" not in error, error
    if "speedup" not in out:
        pytest.skip("needs 2 idle CPUs for the speedup check; the machine gave %.2f"
                    % out["idle"])
    s = out["speedup"]
    assert s["cpython.interpreters"] >= 1.6, s
    assert s["cpython.threading"] < 1.3, s

