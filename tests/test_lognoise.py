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
