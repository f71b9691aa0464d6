#!/usr/bin/env python3
"""Small parquet files shaped like the Hugging Face Hub's NER datasets, for tests/hub.rs.

unimelb-nlp/wikiann (config "ko") and klue/klue (config "ner") store rows of `tokens` (list of
strings) and `ner_tags` (list of ints), and `datasets` writes the ClassLabel names into the file's
`huggingface` metadata. These files copy that layout with invented sentences (no corpus text):
WikiANN-style words compressed with snappy, KLUE-style characters (spaces included) with zstd.

  ~/.cache/nerlab-py/bin/pip install pyarrow
  ~/.cache/nerlab-py/bin/python scripts/make_hub_fixtures.py
"""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hub"
WIKIANN = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
KLUE = ["B-DT", "I-DT", "B-LC", "I-LC", "B-OG", "I-OG", "B-PS", "I-PS", "B-QT", "I-QT", "B-TI", "I-TI", "O"]

WORDS = [
    ("김하늘 은 부산 에서 태어났다 .", "B-PER O B-LOC O O O"),
    ("한빛전자 는 수원 에 공장 을 세웠다 .", "B-ORG O B-LOC O O O O O"),
    ("박지훈 과 이서연 이 서울 로 갔다 .", "B-PER O B-PER O B-LOC O O O"),
    ("새솔은행 본사 는 대전 에 있다 .", "B-ORG O O B-LOC O O O"),
    ("정민호 는 한결대학교 교수 이다 .", "B-PER O B-ORG O O O"),
    ("제주 와 강릉 은 관광지 로 유명하다 .", "B-LOC O B-LOC O O O O O"),
]
CHARS = [
    ("<한빛전자:OG>가 <3일:DT> <서울:LC>에서 발표했다", ),
    ("<김하늘:PS> 씨는 <오후 2시:TI>에 <5명:QT>과 만났다", ),
    ("<부산:LC> 날씨가 맑다", ),
    ("<새솔은행:OG>은 <지난해:DT> <12%:QT> 성장했다", ),
]


def klue_row(line):
    chars, tags = [], []
    rest = line
    while rest:
        if rest[0] == "<":
            inner, rest = rest[1:].split(">", 1)
            text, ty = inner.rsplit(":", 1)
            for i, c in enumerate(text):
                chars.append(c)
                tags.append(KLUE.index(("B-" if i == 0 else "I-") + ty))
        else:
            chars.append(rest[0])
            tags.append(KLUE.index("O"))
            rest = rest[1:]
    return "".join(chars), chars, tags


def write(path, table, names, compression, extra):
    features = {
        "tokens": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"},
        "ner_tags": {"feature": {"names": names, "_type": "ClassLabel"}, "_type": "List"},
        **extra,
    }
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    table = table.replace_schema_metadata(meta)
    pq.write_table(table, path, compression=compression)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", WORDS), ("validation", WORDS[:3])):
        toks = [w.split(" ") for w, _ in rows]
        tags = [[WIKIANN.index(t) for t in g.split(" ")] for _, g in rows]
        langs = [["ko"] * len(t) for t in toks]
        table = pa.table({"tokens": toks, "ner_tags": tags, "langs": langs})
        write(OUT / f"wikiann-ko-{split}.parquet", table, WIKIANN, "snappy",
              {"langs": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"}})
    for split, rows in (("train", CHARS), ("validation", CHARS[:2])):
        parsed = [klue_row(r[0]) for r in rows]
        table = pa.table({
            "sentence": [r[0] for r in rows],
            "tokens": [p[1] for p in parsed],
            "ner_tags": [p[2] for p in parsed],
        })
        write(OUT / f"klue-ner-{split}.parquet", table, KLUE, "zstd",
              {"sentence": {"dtype": "string", "_type": "Value"}})
    for f in sorted(OUT.iterdir()):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
