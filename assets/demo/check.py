#!/usr/bin/env python3
"""Validator for the nerlab demo corpus (sentences.txt).

Format: one sentence per line, entities marked inline as <entity text:TYPE>.
Lines starting with '#' are comments; blank lines are ignored.

Hard errors (exit status 1):
  * unbalanced or nested '<' / '>'
  * a type not in {PS, LC, OG, DT, TI, QT}
  * markup without a ':TYPE' part
  * an empty entity, or entity text that begins or ends with whitespace
  * a literal '<' or '>' outside markup
  * duplicate sentences (same line, or same plain text)
  * corpus minimums not met (skip with --no-minimums while drafting)

Warnings (printed, never fatal) point at things an annotator should re-read:
digits left outside markup, entity text ending in a common particle, an entity
glued to a preceding Hangul syllable, strings that are tagged elsewhere but
appear untagged here, and sentence lengths outside 8..80 characters.

Usage: python3 check.py [sentences.txt] [--no-minimums] [--quiet]
"""
import re
import sys
from collections import Counter
from pathlib import Path

TYPES = ("PS", "LC", "OG", "DT", "TI", "QT")
MIN_SENTENCES = 420
MIN_PER_TYPE = {"PS": 60, "LC": 60, "OG": 60, "DT": 60, "TI": 45, "QT": 60}
LEN_RANGE = (8, 80)
# particles / endings that should sit outside an entity span
PARTICLES = ("에서", "에게", "으로", "로", "은", "는", "이", "가", "을", "를",
             "의", "에", "와", "과", "도", "만", "께서", "한테", "부터", "까지")
HANGUL = re.compile(r"[\uac00-\ud7a3]")


class ParseError(Exception):
    pass


def parse(line):
    """Return (plain_text, [(start, end, text, type)]) or raise ParseError."""
    plain = []
    ents = []
    i = 0
    n = len(line)
    while i < n:
        ch = line[i]
        if ch == ">":
            raise ParseError(f"stray '>' outside markup at column {i + 1}")
        if ch != "<":
            plain.append(ch)
            i += 1
            continue
        # inside markup: find the closing '>' and make sure no '<' comes first
        j = i + 1
        while j < n and line[j] not in "<>":
            j += 1
        if j >= n:
            raise ParseError(f"'<' at column {i + 1} is never closed")
        if line[j] == "<":
            raise ParseError(f"nested '<' at column {j + 1} (inside markup opened at column {i + 1})")
        body = line[i + 1:j]
        if ":" not in body:
            raise ParseError(f"markup '<{body}>' has no ':TYPE' (a literal '<' outside markup?)")
        text, typ = body.rsplit(":", 1)
        if typ not in TYPES:
            raise ParseError(f"unknown type '{typ}' in '<{body}>'")
        if text == "" or text.strip() == "":
            raise ParseError(f"empty entity in '<{body}>'")
        if text != text.strip():
            raise ParseError(f"entity text begins or ends with whitespace in '<{body}>'")
        start = len("".join(plain))
        plain.append(text)
        ents.append((start, start + len(text), text, typ))
        i = j + 1
    return "".join(plain), ents


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    path = Path(args[0]) if args else Path(__file__).with_name("sentences.txt")
    lines = path.read_text(encoding="utf-8").splitlines()

    errors, warnings = [], []
    records = []  # (lineno, raw, plain, ents)
    seen_raw, seen_plain = {}, {}
    for lineno, raw in enumerate(lines, 1):
        if raw.strip() == "" or raw.lstrip().startswith("#"):
            continue
        if raw != raw.strip():
            errors.append(f"line {lineno}: leading or trailing whitespace")
        try:
            plain, ents = parse(raw)
        except ParseError as e:
            errors.append(f"line {lineno}: {e}\n    {raw}")
            continue
        key = raw.strip()
        if key in seen_raw:
            errors.append(f"line {lineno}: duplicate of line {seen_raw[key]}\n    {raw}")
        elif plain in seen_plain:
            errors.append(f"line {lineno}: same plain text as line {seen_plain[plain]}\n    {raw}")
        seen_raw.setdefault(key, lineno)
        seen_plain.setdefault(plain, lineno)
        records.append((lineno, raw, plain, ents))

    # ---------- warnings for the annotator ----------
    lexicon = Counter()
    for _, _, _, ents in records:
        for _, _, text, typ in ents:
            lexicon[text] += 1
    for lineno, raw, plain, ents in records:
        if not LEN_RANGE[0] <= len(plain) <= LEN_RANGE[1]:
            warnings.append(f"line {lineno}: length {len(plain)} outside {LEN_RANGE}")
        covered = [False] * len(plain)
        for s, e, text, typ in ents:
            for k in range(s, e):
                covered[k] = True
            if typ in ("PS", "LC", "OG") and len(text) >= 3:
                for p in PARTICLES:
                    if p == "도" and typ == "LC":
                        continue  # 강원도, 제주도: province/island names end in 도
                    if text.endswith(p) and text[:-len(p)] in lexicon:
                        warnings.append(f"line {lineno}: '{text}' may include particle '{p}'")
            if s > 0 and HANGUL.match(plain[s - 1]):
                warnings.append(f"line {lineno}: '{text}' glued to preceding '{plain[s - 1]}'")
        outside = "".join(c if not covered[k] else "\0" for k, c in enumerate(plain))
        for m in re.finditer(r"[0-9]+", outside):
            warnings.append(f"line {lineno}: untagged digits '{m.group()}' in: {plain}")
        for text in lexicon:
            if len(text) >= 2 and not text.isdigit():
                # only flag matches that start a word (skip e.g. '대전' inside '휴대전화')
                for m in re.finditer(re.escape(text), outside):
                    k = m.start()
                    if k == 0 or not HANGUL.match(outside[k - 1]):
                        warnings.append(f"line {lineno}: '{text}' is tagged elsewhere but untagged here: {plain}")
                        break

    # ---------- counts ----------
    per_type = Counter(typ for r in records for *_, typ in r[3])
    n = len(records)
    no_ent = sum(1 for r in records if not r[3])
    four_plus = sum(1 for r in records if len(r[3]) >= 4)
    lengths = [len(r[2]) for r in records]
    sections = sum(1 for l in lines if l.lstrip().startswith("#"))

    if "--no-minimums" not in flags:
        if n < MIN_SENTENCES:
            errors.append(f"only {n} sentences (need {MIN_SENTENCES})")
        for t, m in MIN_PER_TYPE.items():
            if per_type[t] < m:
                errors.append(f"only {per_type[t]} {t} mentions (need {m})")

    if warnings and "--quiet" not in flags:
        print(f"--- {len(warnings)} warning(s) ---")
        for w in warnings:
            print("  " + w)
    print(f"file: {path}")
    print(f"sentences: {n}")
    print(f"comment lines: {sections}")
    print(f"entities: {sum(per_type.values())}")
    for t in TYPES:
        print(f"  {t}: {per_type[t]}")
    if n:
        print(f"average sentence length: {sum(lengths) / n:.1f} characters (min {min(lengths)}, max {max(lengths)})")
        print(f"sentences with no entity: {no_ent} ({100 * no_ent / n:.1f}%)")
        print(f"sentences with 4+ entities: {four_plus}")
    if errors:
        print(f"\nFAILED: {len(errors)} error(s)", file=sys.stderr)
        for e in errors:
            print("  " + e, file=sys.stderr)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
