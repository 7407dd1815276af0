"""Every source layout, auto-detection, and paths that try to leave the dataset root."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from synthio_ray.config import DataConfig
from synthio_ray.data.sources import SourceError, detect_layout, read_source
from synthio_ray.data.validate import validate_rows


def cfg(**kw) -> DataConfig:
    return DataConfig(**kw)


def by_id(rows):
    return {r["id"]: r for r in rows}


def test_manifest_csv_with_optional_columns(make_wav, tmp_path):
    for i in range(3):
        make_wav(tmp_path / "clips" / f"c{i}.wav", seed=i)
    (tmp_path / "m.csv").write_text(
        "file_name,class,clip_id,subset,text\n"
        "clips/c0.wav,dog,a,training,a dog barks\n"
        "clips/c1,cat,b,TEST,\n"                      # no suffix: tried with audio extensions
        "clips/c2.wav,,c,val,silence\n"               # no label
        ",dog,d,train,\n")                            # no path
    src = read_source(tmp_path / "m.csv", cfg())
    assert src.layout == "manifest" and src.root == tmp_path
    rows = by_id(validate_rows(src.rows, src.root))
    assert rows["a"]["labels"] == ["dog"] and rows["a"]["split"] == "train"
    assert rows["a"]["caption"] == "a dog barks" and rows["a"]["error"] is None
    assert rows["b"]["split"] == "test" and rows["b"]["path"].endswith("c1.wav") and rows["b"]["error"] is None
    assert rows["c"]["error"] == "no label"
    assert rows["d"]["error"] == "no path in this manifest row"


def test_manifest_jsonl_and_parquet_multilabel(make_wav, tmp_path):
    for i in range(2):
        make_wav(tmp_path / f"{i}.wav", seed=i)
    recs = [{"path": "0.wav", "labels": ["Bark", "Dog"]}, {"path": "1.wav", "labels": ["Rain"]}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    rows = read_source(tmp_path / "m.jsonl", cfg()).rows
    assert [r["labels"] for r in rows] == [["Bark", "Dog"], ["Rain"]]
    pd.DataFrame(recs).to_parquet(tmp_path / "m.parquet")
    rows = read_source(tmp_path / "m.parquet", cfg()).rows
    assert [r["labels"] for r in rows] == [["Bark", "Dog"], ["Rain"]]
    # FSD50K-style: a delimited 'labels' string column and extension-less names
    (tmp_path / "dev.csv").write_text("fname,labels,split\n0,\"Bark,Dog\",train\n1,Rain,val\n")
    rows = read_source(tmp_path / "dev.csv", cfg()).rows
    assert [r["labels"] for r in rows] == [["Bark", "Dog"], ["Rain"]]
    assert [r["split"] for r in rows] == ["train", "val"] and rows[0]["path"].endswith("0.wav")


def test_manifest_without_path_or_label_column_is_a_clear_error(tmp_path):
    (tmp_path / "m.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SourceError, match="no path column"):
        read_source(tmp_path / "m.csv", cfg())
    (tmp_path / "m.csv").write_text("path,b\nx.wav,2\n")
    with pytest.raises(SourceError, match="no label column"):
        read_source(tmp_path / "m.csv", cfg())
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SourceError, match="cannot read manifest"):
        read_source(tmp_path / "bad.parquet", cfg())


def test_paths_escaping_the_root_are_never_read(make_wav, tmp_path, monkeypatch):
    root = tmp_path / "ds"
    outside = make_wav(tmp_path / "secret.wav")
    make_wav(root / "ok.wav")
    os.symlink(outside, root / "link.wav")
    (root / "m.csv").write_text(f"path,label\nok.wav,a\n../secret.wav,a\n{outside},a\nlink.wav,a\n"
                                "sub/../../secret.wav,a\n")
    opened = []
    import synthio_ray.data.audio as audio
    real_check = audio.check_audio
    monkeypatch.setattr("synthio_ray.data.validate.check_audio",
                        lambda p: (opened.append(os.path.realpath(p)), real_check(p))[1])
    src = read_source(root / "m.csv", cfg())
    rows = validate_rows(src.rows, src.root)
    assert rows[0]["error"] is None
    for r in rows[1:]:
        assert "escapes the dataset root" in r["error"] and r["path"] is None
    assert opened == [os.path.realpath(root / "ok.wav")]


def test_folders_plain_and_with_split_level(make_wav, tmp_path):
    make_wav(tmp_path / "a" / "dog" / "1.wav")
    make_wav(tmp_path / "a" / "cat" / "deep" / "2.wav", seed=1)
    make_wav(tmp_path / "a" / "stray.wav", seed=2)
    (tmp_path / "a" / "dog" / ".DS_Store").write_text("x")
    src = read_source(tmp_path / "a", cfg())
    assert src.layout == "folders" and src.skipped_hidden == 1
    rows = by_id(src.rows)
    assert rows["dog/1"]["labels"] == ["dog"] and rows["cat/deep/2"]["labels"] == ["cat"]
    assert rows["stray"]["error"] == "file is not inside a class folder"
    make_wav(tmp_path / "b" / "train" / "dog" / "1.wav")
    make_wav(tmp_path / "b" / "test" / "cat" / "2.wav", seed=1)
    rows = by_id(read_source(tmp_path / "b", cfg()).rows)
    assert rows["train/dog/1"]["split"] == "train" and rows["test/cat/2"]["labels"] == ["cat"]
    assert rows["test/cat/2"]["split"] == "test"


def test_esc50_layout(make_wav, tmp_path):
    (tmp_path / "meta").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for i, (fold, cat) in enumerate([(1, "dog"), (4, "rooster"), (5, "dog"), (2, "rooster")]):
        make_wav(tmp_path / "audio" / f"{fold}-{i}-A-0.wav", seed=i)
        lines.append(f"{fold}-{i}-A-0.wav,{fold},0,{cat},False,{i},A")
    (tmp_path / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    src = read_source(tmp_path, cfg())
    assert src.layout == "esc50" and src.domain == "environmental sounds"
    assert [(r["fold"], r["labels"]) for r in src.rows] == [(1, ["dog"]), (4, ["rooster"]), (5, ["dog"]),
                                                           (2, ["rooster"])]
    assert all(r["error"] is None for r in validate_rows(src.rows, src.root))


def test_urbansound8k_layout(make_wav, tmp_path):
    (tmp_path / "metadata").mkdir()
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for i, fold in enumerate([1, 9, 10]):
        make_wav(tmp_path / "audio" / f"fold{fold}" / f"{i}-0-0-{i}.wav", seed=i)
        lines.append(f"{i}-0-0-{i}.wav,{i},0,1,1,{fold},3,dog_bark")
    (tmp_path / "metadata" / "UrbanSound8K.csv").write_text("\n".join(lines) + "\n")
    src = read_source(tmp_path, cfg())
    assert src.layout == "urbansound8k" and [r["fold"] for r in src.rows] == [1, 9, 10]
    assert all(r["error"] is None for r in validate_rows(src.rows, src.root))


def test_pattern_layout(make_wav, tmp_path):
    make_wav(tmp_path / "7_george_3.wav")
    make_wav(tmp_path / "3_lucas_12.wav", seed=1)
    make_wav(tmp_path / "readme_notes.wav", seed=2)
    c = cfg(pattern=r"(?P<label>\d+)_(?P<id>[a-z]+_\d+)\.wav$")
    src = read_source(tmp_path, c)
    assert src.layout == "pattern"
    rows = {r["rel_path"]: r for r in src.rows}
    assert rows["7_george_3.wav"]["labels"] == ["7"] and rows["7_george_3.wav"]["id"] == "george_3"
    assert "does not match the pattern" in rows["readme_notes.wav"]["error"]


def test_detect_layout_errors(make_wav, tmp_path):
    make_wav(tmp_path / "flat.wav")
    with pytest.raises(SourceError, match="--pattern"):
        detect_layout(tmp_path)
    with pytest.raises(SourceError, match="not a manifest"):
        detect_layout(tmp_path / "flat.wav")
    with pytest.raises(SourceError, match="source not found"):
        read_source(tmp_path / "nothing", cfg())


def test_duplicates_quarantined_with_pointer_to_first(make_wav, tmp_path):
    make_wav(tmp_path / "a.wav", seed=1)
    make_wav(tmp_path / "b.wav", seed=1)       # same bytes as a.wav
    make_wav(tmp_path / "c.wav", seed=2)
    (tmp_path / "m.csv").write_text("id,path,label\nA,a.wav,x\nB,b.wav,x\nC,c.wav,y\nC,a.wav,y\nD,./a.wav,y\n")
    src = read_source(tmp_path / "m.csv", cfg())
    errs = [r["error"] for r in validate_rows(src.rows, src.root)]
    assert errs[0] is None and errs[2] is None
    assert errs[1] == "duplicate content: identical bytes to id 'A'"
    assert errs[3].startswith("duplicate id 'C'")
    assert errs[4] == "duplicate path: same file as row id 'A'"
