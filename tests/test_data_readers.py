"""Every reader on the real files of ../shared/data and on self-made files, malformed ones included."""

import json
from collections import Counter

import pytest

from data_tools.config import BuildConfig
from data_tools.errors import InputError
from data_tools.pipeline import extract_pairs
from data_tools.readers import (
    read_aligned,
    read_delimited,
    read_hf,
    read_json_array,
    read_jsonl,
    read_rows,
    read_text,
)
from tests.conftest import SHARED_DATA, read_jsonl as shared_rows

REAL_FILES = {
    "bo_zh_news.jsonl": (300, {"id", "bo", "zh"}),
    "bo_zh_classical.jsonl": (2573, {"id", "doc", "bo", "zh"}),
    "bo_title_generation.jsonl": (232, {"id", "title", "text"}),
    "cmrc2018_dev_sample.jsonl": (463, {"id", "context", "question", "answers"}),
}


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_jsonl_reader_on_real_files(name):
    shared_rows(name)  # skips with a message when ../shared/data is absent
    rows = list(read_jsonl(str(SHARED_DATA / name)))
    count, fields = REAL_FILES[name]
    assert len(rows) == count
    assert set(rows[0].fields) == fields
    assert rows[0].line == 1 and rows[-1].line == count


def write_formats(tmp_path, pairs):
    """The same pairs as JSONL, JSON array, TSV, CSV, aligned files and a local parquet dataset."""
    import csv

    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in pairs), encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps(pairs, ensure_ascii=False), encoding="utf-8")
    with open(tmp_path / "c.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "zh", "bo"])
        writer.writerows([p["id"], p["zh"], p["bo"]] for p in pairs)
    # TSV has no quoting (IANA text/tab-separated-values): fields are written as they are
    tsv = ["id\tzh\tbo"] + ["\t".join((p["id"], p["zh"], p["bo"])) for p in pairs]
    (tmp_path / "c.tsv").write_text("\n".join(tsv) + "\n", encoding="utf-8")
    (tmp_path / "c.zh").write_text("\n".join(p["zh"] for p in pairs) + "\n", encoding="utf-8")
    (tmp_path / "c.bo").write_text("\n".join(p["bo"] for p in pairs) + "\n", encoding="utf-8")
    import datasets

    (tmp_path / "hf").mkdir()
    datasets.Dataset.from_list(pairs).to_parquet(str(tmp_path / "hf" / "train.parquet"))


SELF_MADE = [
    {"id": "a", "zh": "你好，世界", "bo": "བཀྲ་ཤིས་བདེ་ལེགས།"},
    {"id": "b", "zh": 'comma, and "quotes"', "bo": "ཀྲུང་གོ་གསར་པ།"},
    {"id": "c", "zh": "谢谢", "bo": "ཐུགས་རྗེ་ཆེ།"},
]


def real_news_pairs():
    return [{"id": r["id"], "zh": r["zh"], "bo": r["bo"]} for r in shared_rows("bo_zh_news.jsonl")]


@pytest.mark.parametrize("source", ["self_made", "real_news"])
def test_every_format_reads_the_same_pairs(tmp_path, source):
    pairs = SELF_MADE if source == "self_made" else real_news_pairs()
    write_formats(tmp_path, pairs)
    expected = [(p["zh"], p["bo"]) for p in pairs]
    for fields in (
        list(read_jsonl(str(tmp_path / "c.jsonl"))),
        list(read_json_array(str(tmp_path / "c.json"))),
        list(read_delimited(str(tmp_path / "c.tsv"), "\t")),
        list(read_delimited(str(tmp_path / "c.csv"), ",")),
        list(read_aligned(str(tmp_path / "c.zh"), str(tmp_path / "c.bo"), "zh", "bo")),
        list(read_hf(str(tmp_path / "hf"))),
    ):
        assert [(r.fields["zh"], r.fields["bo"]) for r in fields] == expected
    assert [r.fields["zh"] for r in read_text(str(tmp_path / "c.zh"), "zh")] == [p["zh"] for p in pairs]


def test_configurable_field_names(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"key": 1, "chinese": "你好", "tibetan": "བཀྲ་ཤིས།"}, ensure_ascii=False))
    cfg = BuildConfig.from_mapping({"input": {"paths": [str(path)], "source_field": "chinese",
                                              "target_field": "tibetan", "id_field": "key"}})
    pairs = list(extract_pairs(cfg, read_rows(cfg.input, cfg.source_field, cfg.target_field), Counter()))
    assert (pairs[0].id, pairs[0].source, pairs[0].target) == ("1", "你好", "བཀྲ་ཤིས།")


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"zh": "a", "bo": "b"}\n{"zh": "c", "bo": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.jsonl:2: malformed JSON"):
        list(read_jsonl(str(path)))


def test_unknown_field_lists_existing_fields(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"id": "1", "chinese": "你好", "bo": "བཀྲ་ཤིས།"}\n', encoding="utf-8")
    cfg = BuildConfig.from_mapping({"input": {"paths": [str(path)]}})
    with pytest.raises(InputError, match=r"f.jsonl:1: no field 'zh'; the row has \['bo', 'chinese', 'id'\]"):
        list(extract_pairs(cfg, read_rows(cfg.input, "zh", "bo"), Counter()))


def test_non_string_field_and_skip_invalid_counts(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text('{"zh": 5, "bo": "ཀ"}\n{"zh": "好", "bo": "ཀ"}\n{"bo": "ཀ"}\n', encoding="utf-8")
    cfg = BuildConfig.from_mapping({"input": {"paths": [str(path)]}})
    with pytest.raises(InputError, match=r"n.jsonl:1: expected a string, got int \(field 'zh'\)"):
        list(extract_pairs(cfg, read_rows(cfg.input, "zh", "bo"), Counter()))
    skipping = BuildConfig.from_mapping({"input": {"paths": [str(path)], "skip_invalid": True}})
    invalid = Counter()
    pairs = list(extract_pairs(skipping, read_rows(skipping.input, "zh", "bo"), invalid))
    assert [p.source for p in pairs] == ["好"]
    assert sum(invalid.values()) == 2


def test_undecodable_bytes_reported_with_position(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"zh": "ok", "bo": "ok"}\n{"zh": "caf\xe9", "bo": "x"}\n')
    # line 1 is 25 bytes; "\\xe9" is the 12th byte of line 2 -> offset 25 + 11 = 36
    with pytest.raises(InputError, match=r"latin1.jsonl:2: undecodable bytes b'\\xe9' at byte offset 36 \(column 12\)"):
        list(read_jsonl(str(path)))


def test_aligned_files_with_different_counts_name_both(tmp_path):
    (tmp_path / "a.zh").write_text("一\n二\n三\n", encoding="utf-8")
    (tmp_path / "a.bo").write_text("ཀ\nཁ\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"a.zh has 3 lines, .*a.bo has 2"):
        list(read_aligned(str(tmp_path / "a.zh"), str(tmp_path / "a.bo"), "zh", "bo"))


def test_delimited_column_count_mismatch(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("id\tzh\tbo\n1\t你好\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"t.tsv:2: 2 columns where the header has 3"):
        list(read_delimited(str(path), "\t"))


def test_missing_file_and_bad_json_array(tmp_path):
    with pytest.raises(InputError, match="cannot open"):
        list(read_jsonl(str(tmp_path / "absent.jsonl")))
    (tmp_path / "arr.json").write_text('[{"zh": "a"}, 3]', encoding="utf-8")
    with pytest.raises(InputError, match="array element 1 is int"):
        list(read_json_array(str(tmp_path / "arr.json")))
