"""The job log filter: known-harmless library lines are dropped, every other byte reaches stderr, even
from a process that dies abruptly."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synthio_ray.lognoise import is_harmless

REPO = Path(__file__).resolve().parents[1]
RAY_LINE = ("[2026-12-05 22:18:19,668 E 11327 11327] core_worker.cc:2465: Actor with class name: 'MapWorker("
            "MapBatches(Scorer))' and ID: 'a0714' has constructor arguments in the object store and "
            "max_restarts > 0. If the arguments in the object store go out of scope or are lost, the actor "
            "restart will fail. See https://github.com/ray-project/ray/issues/53727 for more details.")


def _run(body: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from synthio_ray.lognoise import filter_stderr
        installed = filter_stderr()
        print("installed", installed, flush=True)
    """) + textwrap.dedent(body)
    import os
    env = {k: v for k, v in os.environ.items() if k != "SYNTHIO_RAW_LOGS"} | (env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=env)


def test_harmless_lines_are_dropped_and_the_rest_passes():
    r = _run(f"""
        os.write(2, b"a real warning\\n")
        os.write(2, {RAY_LINE.encode()!r} + b"\\n")
        print("(TrainController pid=1) " + {RAY_LINE!r}, file=sys.stderr, flush=True)
        os.write(2, b"\\r[  3s] round 0 4")       # a redraw with no newline yet
        os.write(2, b"\\r[  4s] round 0 8\\nlast line, no newline")
    """)
    err = r.stderr.decode()
    assert r.stdout.decode().strip() == "installed True"
    assert "a real warning\n" in err
    assert "constructor arguments" not in err
    assert "\r[  3s] round 0 4\r[  4s] round 0 8\n" in err
    assert err.endswith("last line, no newline")


def test_a_crashing_job_still_gets_its_last_words_out():
    r = _run("""
        os.write(2, b"Fatal Python error: about to abort\\n")
        os.abort()
    """)
    assert r.returncode != 0
    assert "Fatal Python error: about to abort" in r.stderr.decode()


def test_raw_logs_turns_it_off():
    r = _run(f"""os.write(2, {RAY_LINE.encode()!r} + b"\\n")""", {"SYNTHIO_RAW_LOGS": "1"})
    assert r.stdout.decode().strip() == "installed False"
    assert "constructor arguments" in r.stderr.decode()


@pytest.mark.parametrize("line", ["core_worker.cc:2465: something else entirely",
                                  "Actor has constructor arguments in the object store and max_restarts > 0"])
def test_only_the_known_line_matches(line):
    assert not is_harmless(line)
    assert is_harmless(RAY_LINE)


def _trial(pid: int, text: str) -> str:
    return f"\x1b[36m(classifier_trial pid={pid})\x1b[0m {text}"


SIGTERM_BLOCK = ["", "Exception ignored in: <function WeakSet.__init__.<locals>._remove at 0x7fb258896520>",
                 "Traceback (most recent call last):",
                 '  File "/usr/lib/python3.11/_weakrefset.py", line 39, in _remove',
                 "    def _remove(item, selfref=ref(self)):", "",
                 '  File "/venv/site-packages/ray/_private/worker.py", line 1063, in sigterm_handler',
                 "    raise_sys_exit_with_custom_error_message(",
                 '  File "python/ray/_raylet.pyx", line 712, in ray._raylet.raise_sys_exit_with_custom_error_message',
                 "SystemExit: 1"]


def _feed(lines: list[str]) -> list[str]:
    from synthio_ray.lognoise import LineFilter

    f = LineFilter()
    out = [o for line in lines for o in f.feed(line)]
    return out + f.flush()


def test_a_trial_actors_sigterm_traceback_is_dropped_and_other_workers_lines_keep_their_order():
    a = [_trial(7615, t) for t in SIGTERM_BLOCK]
    b = [_trial(9, "epoch 1 loss 0.5"), _trial(9, "epoch 2 loss 0.4"), "driver line", _trial(9, "")]
    mixed = [a[0], a[1], b[0], a[2], a[3], b[1], *a[4:], b[2], b[3], _trial(9, "done")]
    assert _feed(mixed) == b + [_trial(9, "done")]


@pytest.mark.parametrize("last", ["RuntimeError: CUDA out of memory", "SystemExit: 2"])
def test_any_other_traceback_passes_whole(last):
    real = [_trial(5, t) for t in SIGTERM_BLOCK[:-1] + [last]]
    plain = ["Traceback (most recent call last):", '  File "jobs/augment.py", line 3, in <module>', last]
    assert _feed(real) == real
    assert _feed(plain + ["next"]) == plain + ["next"]


def test_a_traceback_cut_off_by_a_dying_worker_still_reaches_the_log():
    r = _run(f"""
        for line in {[_trial(3, t) for t in SIGTERM_BLOCK[:-1]]!r}:
            os.write(2, line.encode() + b"\\n")
        os._exit(1)
    """)
    assert "in sigterm_handler" in r.stderr.decode()
