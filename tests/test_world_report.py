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


def test_a_row_is_paired_with_gold_only_seed_by_seed():
    """The paired difference takes each seed's gold-only accuracy, not the gold mean, and names the k chosen
    and the synthetic clips it trained on."""
    import pandas as pd

    from synthio_ray.world.effects import _paired

    r = pd.DataFrame({"method": ["gold"] * 3 + ["synthio"] * 3, "seed": [0, 1, 2] * 2,
                      "value": [0.9, 0.8, 0.7, 0.95, 0.85, 0.75], "k": [None] * 3 + [2.0] * 3,
                      "train_clips": [64.0] * 3 + [107.0] * 3})
    text = _paired(r, "synthio", 64)
    assert "per seed +5.00 ± 0.00" in text          # every seed 5 points up; unpaired std would be 10
    assert "k = 2, 43 synthetic clips" in text
    assert _paired(r, "gold", 64) == ""
    r.loc[5, "value"] = 0.65                          # seed 2 now 5 points down
    assert "per seed +1.67 ± 5.77" in _paired(r, "synthio", 64)
