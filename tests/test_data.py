"""Reading datasets: formats, broken rows, missing columns, bad labels."""

from __future__ import annotations

import gzip
import json

import pytest

from cur_ml.data import load_appeals, records_to_frame
from cur_ml.errors import DataError

HEADER = "id,text,category,reason,urgency,agency,district\n"
ROW = '1,"Мусор во дворе",Благоустройство,Мусор,medium,ЖА,Невский\n'


def test_csv_gz_and_jsonl_read_alike(tmp_path):
    (tmp_path / "a.csv").write_text(HEADER + ROW, encoding="utf-8")
    with gzip.open(tmp_path / "a.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(HEADER + ROW)
    record = dict(
        zip(
            HEADER.strip().split(","),
            ["1", "Мусор во дворе", "Благоустройство", "Мусор", "medium", "ЖА", "Невский"],
            strict=True,
        )
    )
    (tmp_path / "a.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n")
    frames = [load_appeals([tmp_path / n]).frame for n in ("a.csv", "a.csv.gz", "a.jsonl")]
    for frame in frames:
        assert frame.loc[0, "text"] == "Мусор во дворе" and frame.loc[0, "district"] == "Невский"


def test_broken_rows_are_skipped_and_counted(tmp_path):
    body = (
        HEADER
        + ROW
        + "2,broken,row,with,too,many,fields,here,and,more\n"
        + ROW.replace("1,", "3,", 1)
        + "4,,Фасад,Окраска,low,ЖА,Невский\n"
        + "5,текст,Фасад,Окраска,urgent,ЖА,Невский\n"
    )
    (tmp_path / "b.csv").write_text(body, encoding="utf-8")
    data = load_appeals([tmp_path / "b.csv"])
    assert list(data.frame["id"]) == ["1", "3"]
    assert data.skipped["empty_text"] == 1
    assert data.skipped["bad_urgency"] == 1
    assert sum(data.skipped.values()) >= 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,text\n1,x\n", "missing column"),
        (b"\xff\xfe\x00broken", "cannot read"),
        (HEADER.encode(), "no usable rows"),
    ],
)
def test_unusable_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_appeals([path])


def test_records_to_frame_types_every_field():
    frame = records_to_frame([{"text": "яма"}, {"text": None, "lat": "59.9", "lon": 1e308}])
    assert list(frame["text"]) == ["яма", ""]
    assert frame["lat"].tolist()[1] == 59.9
    assert frame["lon"].isna().all()
    assert (frame["district"] == "").all()
