"""File readers of ``records.load_frame``: size limits checked before (Parquet, Excel) or after (CSV, JSON) parsing."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framework.errors import DataValidationError
from framework.records import load_frame


def parquet_bomb(path, rows: int, chunk: int = 10_000_000) -> None:
    """``rows`` zeros in one int column: a file of under a megabyte that expands to ``8 * rows`` bytes."""
    schema = pa.schema([("x", pa.int64())])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        zeros = pa.table({"x": np.zeros(min(rows, chunk), dtype=np.int64)})
        for start in range(0, rows, chunk):
            writer.write_table(zeros.slice(0, min(chunk, rows - start)))


def test_parquet_over_the_cell_limit_is_refused_from_its_metadata(tmp_path, monkeypatch):
    path = tmp_path / "bomb.parquet"
    parquet_bomb(path, rows=3_000_000, chunk=1_000_000)

    def no_reading(*args, **kwargs):
        raise AssertionError("the rows were read before the limit was checked")

    monkeypatch.setattr(pd, "read_parquet", no_reading)
    with pytest.raises(DataValidationError, match=r"3000000 rows x 1 columns = 3000000 cells, over the limit of 1000"):
        load_frame(path, max_cells=1000)


def test_files_under_the_limit_load(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    for suffix, write in [
        (".parquet", frame.to_parquet),
        (".csv", lambda p: frame.to_csv(p, index=False)),
        (".json", lambda p: frame.to_json(p, orient="records")),
        (".xlsx", lambda p: frame.to_excel(p, index=False)),
    ]:
        path = tmp_path / f"data{suffix}"
        write(path)
        pd.testing.assert_frame_equal(load_frame(path, max_cells=4), frame, check_dtype=False)
        with pytest.raises(DataValidationError, match="limit of 3") as caught:
            load_frame(path, max_cells=3)
        assert caught.value.field == "data"


def test_records_over_the_limit_are_refused():
    with pytest.raises(DataValidationError, match="the records has 3 rows x 2 columns = 6 cells, over the limit of 5"):
        load_frame([{"a": 1, "b": 2}] * 3, max_cells=5)


def test_excel_entity_expansion_is_refused(tmp_path):
    """A billion-laughs sheet: defusedxml (openpyxl's parser when installed) refuses entity declarations."""
    path = tmp_path / "laughs.xlsx"
    pd.DataFrame({"a": [1]}).to_excel(path, index=False)
    with zipfile.ZipFile(path) as original:
        parts = {name: original.read(name) for name in original.namelist()}
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(9))
    parts["xl/worksheets/sheet1.xml"] = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{laughs}]>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>&l8;</t></is></c></row></sheetData></worksheet>'
    ).encode()
    with zipfile.ZipFile(path, "w") as bomb:
        for name, data in parts.items():
            bomb.writestr(name, data)
    import openpyxl.xml

    assert openpyxl.xml.DEFUSEDXML, "defusedxml (a dependency) is not installed: openpyxl would parse unsafely"
    with pytest.raises(DataValidationError, match=r"cannot read laughs\.xlsx"):
        load_frame(path)


def test_numbers_beyond_float64_are_a_data_error():
    with pytest.raises(DataValidationError, match="too large") as caught:
        load_frame([{"a": 1, "b": 10**400}, {"a": 2, "b": 3}])
    assert caught.value.field == "records"


def test_csv_output_cannot_carry_spreadsheet_formulas():
    from framework.records import csv_safe

    frame = pd.DataFrame({'=HYPERLINK("x")': [1.0], "top_feature": ["@SUM(A1)"], "score": [-1.5]})
    safe = csv_safe(frame)
    assert list(safe.columns) == ['\'=HYPERLINK("x")', "top_feature", "score"]
    assert safe["top_feature"].tolist() == ["'@SUM(A1)"] and safe["score"].tolist() == [-1.5]
    assert frame.columns[0].startswith("=")  # the input is not changed


def test_a_repeated_column_is_refused_not_renamed_or_overwritten(tmp_path):
    """pandas renames a repeated CSV or Excel header to ``a.1`` and a JSON reader keeps the last of two equal
    keys, both without a word: every reader now refuses the file, naming the column."""
    (tmp_path / "data.csv").write_text("a,b,a\n1,2,3\n")
    (tmp_path / "data.json").write_text('[{"a": 1, "b": 2, "a": 3}]')
    pd.DataFrame([[1, 2, 3]], columns=["a", "b", "a"]).to_excel(tmp_path / "data.xlsx", index=False)
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2]), pa.array([3])], names=["a", "b", "a"])
    pq.write_table(table, tmp_path / "data.parquet")
    for suffix in (".csv", ".json", ".xlsx", ".parquet"):
        with pytest.raises(DataValidationError, match=r"repeats column\(s\) 'a'") as caught:
            load_frame(tmp_path / f"data{suffix}")
        assert caught.value.field == "a", suffix
