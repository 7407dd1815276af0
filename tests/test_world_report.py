"""jobs/world_report.py's command line: bad parts and bad config overrides are refused before any model
loads, with the reason."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _main():
    spec = importlib.util.spec_from_file_location("world_report", REPO / "jobs" / "world_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_unknown_part_and_unknown_key_are_refused(tmp_path, capsys):
    main = _main()
    assert main(["--parts", "align,bogus", "--out", str(tmp_path / "a")]) == 2
    assert "unknown parts ['bogus']" in capsys.readouterr().err
    assert main(["--parts", "align", "--out", str(tmp_path / "b"), "align.lerning_rate=5e-4"]) == 2
    err = capsys.readouterr().err
    assert "align.lerning_rate: unknown key" in err and "lr" in err
    assert not (tmp_path / "b" / "world_report.json").exists()


def test_unknown_method_is_refused_with_the_known_ones(tmp_path, capsys):
    main = _main()
    assert main(["--parts", "augment", "--methods", "synthio,wo_dpoo", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "unknown methods ['wo_dpoo']" in err and "wo_dpo" in err
    assert not (tmp_path / "c" / "world_report.json").exists()
