"""Build eval/dev2_test.csv from the hand-written row files and check it.

Checks:
  * counts per language / label, every KB entry >= 4 rows and >= 1 per language;
  * similarity of every row to every KB question in every language
    (lower-case, Cyrillic -> Latin, Polish diacritics stripped, difflib ratio);
    exits non-zero if any row scores >= 0.72;
  * duplicates, style statistics (long / keyword-only / Latin-script / no-diacritics).
Reads only kb/*.yaml. Run from the repo root: python eval/tools/dev2_build.py
"""
import csv, difflib, glob, importlib.util, re, sys, unicodedata
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOOLS = Path(__file__).resolve().parent
THRESHOLD = 0.72

CYR = {"а":"a","б":"b","в":"v","г":"g","ґ":"g","д":"d","е":"e","ё":"e","є":"ye","ж":"zh","з":"z",
       "и":"i","і":"i","ї":"yi","й":"y","к":"k","л":"l","м":"m","н":"n","о":"o","п":"p","р":"r",
       "с":"s","т":"t","у":"u","ф":"f","х":"kh","ц":"ts","ч":"ch","ш":"sh","щ":"shch","ъ":"",
       "ы":"y","ь":"","э":"e","ю":"yu","я":"ya","'":"","’":"","ʼ":""}
PL = str.maketrans("ąćęłńóśźż", "acelnoszz")

def norm(s):
    s = s.lower().translate(PL)
    s = "".join(CYR.get(c, c) for c in s)
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", s).strip()

def load(lang):
    spec = importlib.util.spec_from_file_location(f"dev2_{lang}", TOOLS / f"dev2_{lang}.py")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m.INSCOPE, m.OOS

kb = []
for f in sorted(glob.glob(str(ROOT / "kb" / "*.yaml"))):
    kb += yaml.safe_load(open(f, encoding="utf-8"))
ids = [e["id"] for e in kb]
kbq = [(e["id"], l, q, norm(q)) for e in kb for l, qs in e["questions"].items() for q in qs]

rows = []
for lang in ("en", "ru", "pl", "uk"):
    ins, oos = load(lang)
    rows += [(t, i, lang) for t, i in ins] + [(t, i, lang) for t, i in oos]

ok = True
# labels and counts
for t, i, l in rows:
    if i != "oos" and i not in ids:
        print("UNKNOWN INTENT", i, t); ok = False
texts = [t for t, _, _ in rows]
dups = {t for t in texts if texts.count(t) > 1}
if dups: print("DUPLICATES", dups); ok = False
from collections import Counter
c = Counter((l, "oos" if i == "oos" else "in") for t, i, l in rows)
print("counts:", dict(sorted(c.items())), "total", len(rows))
per = Counter(i for _, i, _ in rows if i != "oos")
perlang = Counter((i, l) for _, i, l in rows if i != "oos")
for e in ids:
    langs = [l for l in ("en", "ru", "pl", "uk") if perlang[(e, l)] == 0]
    if per[e] < 4 or langs:
        print("COVERAGE", e, per[e], "missing", langs); ok = False
print("rows per entry: min", min(per[e] for e in ids), "max", max(per[e] for e in ids))

# similarity to KB questions
worst = []
for t, i, l in rows:
    n = norm(t)
    best = max(((difflib.SequenceMatcher(None, n, q).ratio(), kid, ql, qq) for kid, ql, qq, q in kbq))
    worst.append((best[0], t, i, l, best[1], best[2], best[3]))
worst.sort(reverse=True)
print(f"max similarity {worst[0][0]:.3f}")
for w in worst[:12]:
    print(f"  {w[0]:.3f} [{w[3]} {w[2]}] {w[1]!r} ~ [{w[5]} {w[4]}] {w[6]!r}")
bad = [w for w in worst if w[0] >= THRESHOLD]
if bad:
    print("ROWS >= threshold:", len(bad)); ok = False

# style stats
lat = lambda s: not re.search(r"[\u0400-\u04FF]", s)
for lang in ("en", "ru", "pl", "uk"):
    r = [(t, i) for t, i, l in rows if l == lang]
    longn = sum(len(t) > 120 for t, _ in r)
    kw = sum(len(t.split()) <= 3 for t, _ in r)
    nopunct = sum(not re.search(r"[.?!]$", t) for t, _ in r)
    extra = ""
    if lang in ("ru", "uk"):
        extra = f" latin={sum(lat(t) for t, _ in r)}"
    if lang == "pl":
        extra = f" no_diacritics={sum(not re.search('[ąćęłńóśźżĄĆĘŁŃÓŚŹŻ]', t) for t, _ in r)}"
    print(f"{lang}: n={len(r)} long>120={longn} keyword<=3w={kw} no_final_punct={nopunct}{extra}")

with open(ROOT / "eval" / "dev2_test.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["text", "intent", "lang"])
    w.writerows(rows)
sys.exit(0 if ok else 1)
