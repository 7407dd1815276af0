"""The job's progress line: per-round done/total and an ETA from the round's own rate."""
import io

from synthio_ray.pipeline import progress as progress_mod
from synthio_ray.pipeline.progress import Progress


def test_eta_comes_from_the_running_rounds_rate(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(progress_mod.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    p = Progress("on", stream=out, log_every=0.0)
    p.expect("round 0", 100)
    clock[0] += 20.0
    p.update("round 0", 25, accepted=10)
    assert "round 0 25/100 eta 1m00s" in p.line()          # 75 left at 25 rows / 20 s
    clock[0] += 20.0
    p.update("round 0", 75, accepted=30)
    assert "round 0 100/100 eta 0m00s" in p.line()
    # round 1 counts from its own start, not from the job's
    p.expect("round 1", 10)
    assert "round 1 0/10" in p.line() and "eta" not in p.line()
    clock[0] += 3600.0
    p.update("round 1", 1)
    assert "round 1 1/10 eta 9h00m" in p.line()
    p.close()
    assert out.getvalue().count("\n") >= 3                   # not a TTY: one line per update, and the final


def test_no_eta_without_an_expected_total():
    p = Progress("on", stream=io.StringIO())
    p.update("round 0", 4)
    assert "eta" not in p.line() and "round 0 4" in p.line()
