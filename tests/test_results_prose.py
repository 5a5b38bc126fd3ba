"""The prose of the notebooks that report experiments (02's temperature runs, 06-09) cannot drift from its numbers.

Every "mean ± sd" quoted in a markdown cell of such a notebook, and every decimal number in its findings cells
(the cells headed "What the measurement shows" / "测量结果"), is a value of that notebook's cached JSON
(notebooks/results), formatted as the notebook formats it (``experiments.stats.fmt``), a paired difference of
the phenomena table (phenomena.json, as its tables print it), or one of the paper's numbers the notebook quotes.
A few qualitative claims the prose makes are checked against the JSON as well.
"""

import json
import math
import re
from pathlib import Path

import nbformat
import pytest

from simclr_core.experiments.stats import differs, fmt

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {"02_temperature": ("temperature",), "06_augmentation_ablation": ("fig5", "composition"),
             "07_small_batches": ("small_batch", "negatives"), "08_visualizing_representations": ("visualize", "pretraining"),
             "09_simclr_vs_supervised": ("vs_supervised",)}  # the first is the notebook's own experiment
# numbers the notebooks quote from the paper / lecture, not measured here
PAPER = {"56.3", "48.3", "25.4", "65.6", "56.4", "76.5", "69.3", "1.28"}
# settings and closed forms the findings quote, per notebook (not measurements)
SETTINGS = {"07_small_batches": {"0.99", "0.999",  # MoCo's momentum m
                                 f"{math.log(2 * 32 - 1 + 4096):.1f}"}}  # chance level log(2N - 1 + K) at N = 32
PLUS_MINUS = re.compile(r"(-?\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")
DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")


def _results(name) -> list[dict]:
    out = []
    for exp in NOTEBOOKS[name]:
        path = ROOT / "notebooks" / "results" / f"{exp}.json"
        if not path.is_file():
            pytest.skip(f"no cached {path.name}")
        out.append(json.loads(path.read_text()))
    return out


def _result(name):
    return _results(name)[0]


def _phenomena_rows() -> list[dict]:
    path = ROOT / "notebooks" / "results" / "phenomena.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def _paired() -> set[str]:
    """The phenomena table's paired differences as its tables print them: mean ± sd, each per-seed difference."""
    out = set()
    for row in _phenomena_rows():
        if "mean" in row and row["unit"] == "points":
            text = f"{row['mean']:.1f} ± {row['sd']:.1f}".replace("-0.0 ", "0.0 ")
            out.update([text, *text.split(" ± "), *(f"{d:.1f}" for d in row["differences"])])
    return out


def _mean_sds(obj):
    if isinstance(obj, dict):
        if set(obj) >= {"mean", "sd", "values"}:
            yield obj
            return
        for v in obj.values():
            yield from _mean_sds(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _mean_sds(v)


def _leaves(obj) -> set[str]:
    """Single measured values stored as plain numbers (e.g. the cosine of a closest pair), to 1-4 digits."""
    if isinstance(obj, dict):
        return set().union(*(_leaves(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_leaves(v) for v in obj)) if obj else set()
    if isinstance(obj, float):
        return {f"{obj:.{d}f}" for d in range(1, 5)}
    return set()


def _quotable(result) -> set[str]:
    """Every way the notebooks format a measured value: percentages to 0-1 digits, raw values to 1-3 digits."""
    out = set()
    for ms in _mean_sds(result if isinstance(result, dict) else list(result)):
        for scale, digits in ((100, 1), (100, 0), (1, 1), (1, 2), (1, 3)):
            text = fmt(ms, scale, digits)
            out.update([text, *text.split(" ± ")])
    return out


def _markdown(name):
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "markdown"]


def _findings(name):
    return [s for s in _markdown(name) if "What the measurement shows" in s or "测量结果" in s]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_quoted_mean_sd_is_a_cached_value(name):
    quotable = _quotable(_results(name)) | _paired()
    quoted = [f"{m} ± {s}" for text in _markdown(name) for m, s in PLUS_MINUS.findall(text)]
    assert quoted, f"{name} quotes no measured mean ± sd"
    wrong = [q for q in quoted if q not in quotable]
    assert not wrong, f"{name} quotes values that are not in its cached JSON: {wrong}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_decimal_in_the_findings_is_a_cached_value_or_the_papers(name):
    results = _results(name)
    findings = _findings(name)
    assert findings, f"{name} has no findings cell ('What the measurement shows' / '测量结果')"
    quotable = _quotable(results) | _leaves(results) | _paired() | PAPER | SETTINGS.get(name, set())
    numbers = [n for text in findings for n in DECIMAL.findall(text)]
    wrong = sorted({n for n in numbers if n not in quotable})
    assert not wrong, f"{name}'s findings quote numbers that are neither measured nor the paper's: {wrong}"


def test_the_checks_catch_a_drifted_number():
    result = {"a": {"mean": 0.869, "sd": 0.005, "values": [0.864, 0.869, 0.874]}}
    q = _quotable(result)
    assert "86.9 ± 0.5" in q and "86.9" in q
    assert "87.0 ± 0.5" not in q and "86.9 ± 0.4" not in q
    assert DECIMAL.findall("gains 1.8 points (86.9 ± 0.5), N = 32") == ["1.8", "86.9", "0.5"]


CJK = re.compile(r"[\u4e00-\u9fff]")


def _by_language(text) -> tuple[str, str]:
    """A cell's English and Chinese paragraphs (a paragraph with more than 20 CJK characters is Chinese)."""
    paras = re.split(r"\n\s*\n", text)
    zh = [p for p in paras if len(CJK.findall(p)) > 20]
    return "\n".join(p for p in paras if p not in zh), "\n".join(zh)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_chinese_quotes_every_number_the_english_quotes(name):
    """Per markdown cell, the Chinese paragraphs quote the same mean ± sd values as the English ones, and in the
    findings cells every decimal the English quotes: a Chinese summary cannot drop a measurement or drift from it."""
    findings = _findings(name)
    for k, text in enumerate(_markdown(name)):
        en, zh = _by_language(text)
        if not zh:
            continue
        assert set(PLUS_MINUS.findall(en)) == set(PLUS_MINUS.findall(zh)), (
            f"{name} markdown cell {k}: mean ± sd only in English {set(PLUS_MINUS.findall(en)) - set(PLUS_MINUS.findall(zh))}, "
            f"only in Chinese {set(PLUS_MINUS.findall(zh)) - set(PLUS_MINUS.findall(en))}")
        if text in findings:
            missing = sorted(set(DECIMAL.findall(en)) - set(DECIMAL.findall(zh)))
            assert not missing, f"{name} findings cell {k}: the Chinese drops {missing}"


def test_the_language_check_catches_a_dropped_number():
    en, zh = _by_language("kNN 77.8 ± 0.4 vs 75.6 ± 0.7.\n\n" + "按准确率它领先随机初始化,这里写足二十个以上的汉字才算中文段落:kNN 77.8 ± 0.4。")
    assert set(PLUS_MINUS.findall(en)) - set(PLUS_MINUS.findall(zh)) == {("75.6", "0.7")}


# ---------------------------------------------------------------- the qualitative claims

def test_06_crop_and_colour_are_the_best_pair_and_knn_does_not_beat_random_init():
    r = _result("06_augmentation_ablation")
    ops, lin, knn = r["ops"], r["linear"], r["knn"]
    pairs = [(i, j) for i in range(len(ops)) for j in range(len(ops)) if i != j]
    cells = sorted(((lin[i][j]["mean"], ops[i], ops[j]) for i, j in pairs), reverse=True)
    assert {frozenset(c[1:]) for c in cells[:2]} == {frozenset(("crop", "color"))}  # both orders on top
    best_with = {op: max(lin[i][j]["mean"] for i, j in pairs if k in (i, j)) for k, op in enumerate(ops)}
    for k, op in enumerate(ops):  # every operator alone is below its best partner, but cutout
        assert (lin[k][k]["mean"] < best_with[op]) == (op != "cutout"), op
    diag = {op: (lin[k][k]["mean"], knn[k][k]["mean"]) for k, op in enumerate(ops)}
    assert sorted(diag, key=lambda op: -diag[op][0])[:2] == ["cutout", "crop"]  # "cutout and crop on top"
    assert max(v[0] for v in diag.values()) - min(v[0] for v in diag.values()) < 0.02  # "within two points"
    assert diag["crop"][1] < diag["color"][1] and diag["crop"][1] < diag["noise"][1]  # "trails colour and noise"
    c, x = ops.index("crop"), ops.index("cutout")
    assert knn[c][x]["mean"] == min(knn[i][j]["mean"] for i in range(len(ops)) for j in range(len(ops)))  # worst
    rand = r["baselines"]["random init"]
    assert differs(r["default_policy"]["knn"], rand["knn"]) == 0  # "equal within the noise"
    assert all(differs(cell, rand["knn"]) <= 0 for row in knn for cell in row)  # "no cell is better"
    rows = {row["id"]: row for row in _phenomena_rows()}
    assert rows["P2 default policy vs random init (linear)"]["verdict"] == "shown"  # "beyond the seeds' noise"
    assert rows["P2 default policy vs random init (knn)"]["verdict"] == "not shown"


def test_06_at_the_main_runs_length_every_p2_comparison_is_shown():
    comp = _results("06_augmentation_ablation")[1]
    rows = [row for row in _phenomena_rows() if row["id"].startswith("P2 at length")]
    assert len(rows) == 8 and all(row["verdict"] == "shown" for row in rows), rows
    rand = comp["baselines"]["random init"]["knn"]["mean"]
    assert all(comp["variants"][a]["knn"]["mean"] < rand for a in ("crop", "color"))  # "neither reaches random init"
    order = sorted(comp["variants"], key=lambda a: -comp["variants"][a]["knn"]["mean"])
    assert order[-2:] in (["color", "crop"], ["crop", "color"])  # "the grid's ranking held": the pair above both
    assert order.index("crop then color") < 2


def test_07_the_large_batch_beats_random_init_and_extra_negatives_do_not_help_here():
    r = _result("07_small_batches")
    v, rand = r["variants"], r["baselines"]["random init"]
    n, N = r["small_batch"], r["large_batch"]
    big, small = f"SimCLR, N={N}", f"SimCLR, N={n}"
    assert differs(v[big]["linear"], rand["linear"]) == 1 and differs(v[big]["knn"], rand["knn"]) == 1
    assert differs(v[small]["knn"], rand["knn"]) == 0
    for b in (n, N):  # every bank and queue below plain SimCLR at its batch, by both probes
        plain = v[f"SimCLR, N={b}"]
        for name, x in v.items():
            if name.endswith(f"N={b}") and name != f"SimCLR, N={b}":
                assert x["knn"]["mean"] < plain["knn"]["mean"], name
                assert x["linear"]["mean"] <= plain["linear"]["mean"] + 0.0005, name  # "level": 87.1 vs 87.1
        bank, queue = v[f"memory bank (PIRL), N={b}"], v[f"MoCo queue K=4096, N={b}"]
        assert queue["knn"]["mean"] > bank["knn"]["mean"]  # "the queue did better than the bank"
        assert all(1 < x["train_s"] / plain["train_s"] <= 1.5 for x in (bank, queue))  # "at most half as long again"
    others = [x for name, x in v.items() if name != big]
    assert all(differs(x["knn"], rand["knn"]) <= 0 for x in others)  # "by kNN the only run clearly ahead"
    # the losses: bank and queue start low and rise, plain SimCLR falls
    bank, queue, plain = (v[k]["loss_curve"] for k in (f"memory bank (PIRL), N={n}", f"MoCo queue K=4096, N={n}", small))
    assert bank[0][1] < bank[-1][1] < queue[-1][1] < 8.3 and queue[0][1] < queue[-1][1] and plain[-1][1] < plain[0][1]
    # staleness is not the cause; the number of bank negatives is; the queue does not depend on K
    p4 = _phenomenon_rows("P4")
    assert all(p4[f"P4 re-encoded bank vs bank, small batch ({m})"]["verdict"] == "not shown" for m in ("knn", "linear"))
    assert all(p4[f"P4 small bank vs bank, small batch ({m})"]["verdict"] == "shown" for m in ("knn", "linear"))
    refreshed = v[f"memory bank re-encoded every 25 steps, N={n}"]
    assert refreshed["loss_curve"][-1][1] > bank[-1][1] and refreshed["train_s"] > 4 * v[small]["train_s"]
    small_bank = v[f"memory bank (PIRL) K=256, N={n}"]
    assert differs(small_bank["linear"], v[small]["linear"]) == 0
    assert all(differs(v[f"MoCo queue K=256, N={n}"][m], v[f"MoCo queue K=4096, N={n}"][m]) == 0 for m in ("knn", "linear"))


def test_08_simclr_beats_random_init_and_the_collapsed_run_collapses():
    r = _result("08_visualizing_representations")
    v = r["variants"]
    s, rand, col = v["SimCLR"], v["random init"], v["collapsed (no negatives)"]
    for m in ("knn", "linear", "nn_same_class"):
        assert differs(s[m], rand[m]) == 1, m
    assert col["z_uniformity"]["mean"] > -0.01 and col["z_effective_rank"]["mean"] < 2
    assert differs(col["knn"], rand["knn"]) == -1
    pairs = s["closest_pairs"]
    assert all(p["class_i"] == p["class_j"] for p in pairs)  # "all 8 ... are the same class"
    names = sorted(r["classes"][p["class_i"]] for p in pairs)
    assert names.count("Trouser") == 4 and names.count("Sandal") == 2 and names.count("Sneaker") == 2
    assert any(r["classes"][p["class_i"]] != r["classes"][p["class_j"]] for p in rand["closest_pairs"])


def test_the_results_readme_quotes_the_cached_wall_times():
    text = (ROOT / "notebooks" / "results" / "README.md").read_text()
    total = 0.0
    for exp in dict.fromkeys(e for names in NOTEBOOKS.values() for e in names):
        path = ROOT / "notebooks" / "results" / f"{exp}.json"
        if not path.is_file():
            continue
        wall = json.loads(path.read_text())["wall_s"] / 60
        total += wall
        row = next(line for line in text.splitlines() if line.startswith(f"| `{exp}.json`"))
        assert row.rstrip(" |").endswith(f"| {wall:.0f} min"), (row, wall)
    assert f"{total:.0f} minutes for the cached files in all" in text


def test_09_what_the_findings_claim():
    r = _result("09_simclr_vs_supervised")
    A, B = r["in_domain"], r["transfer"]
    assert list(A) == list(B) == ["1", "10", "100", "all"]
    assert [A[k]["n_labels"] for k in A] == [10, 100, 1000, 10_000]  # every class equally, all 10,000 at the end
    probe, scratch, rand = "SimCLR h (linear probe)", "supervised from scratch", "random-init h (linear probe)"
    ft, raw = "SimCLR fine-tuned", "raw pixels (linear probe)"
    p7 = _phenomenon_rows("P7")
    # A: one label per class: SimCLR wins, by probe, fine-tuning and kNN, above every baseline
    assert all(p7[f"P7 {k} vs scratch, 1 per class"]["verdict"] == "shown" for k in ("probe", "fine-tuned"))
    assert all(differs(A["1"][m], A["1"][raw]) == 1 for m in (probe, ft))
    assert all(a > b for a, b in zip(A["1"]["SimCLR h (kNN)"]["values"], A["1"][scratch]["values"]))  # every seed
    assert A["1"][probe]["mean"] > A["1"][rand]["mean"] and differs(A["1"][probe], A["1"]["SimCLR h (kNN)"]) == 0
    # 10 per class: inside the noise; 100 per class: the probe ahead on every seed, fine-tuning back to scratch
    assert all(p7[f"P7 {k} vs scratch, 10 per class"]["verdict"] == "not shown" for k in ("probe", "fine-tuned"))
    p100 = p7["P7 probe vs scratch, 100 per class"]
    assert p100["verdict"] == "shown" and min(p100["differences"]) > 0
    assert differs(A["100"][probe], A["100"][rand]) == 1
    assert p7["P7 fine-tuned vs scratch, 100 per class"]["verdict"] == "not shown"
    # all labels: the probe above random init and raw pixels, level with scratch and fine-tuning
    assert differs(A["all"][probe], A["all"][rand]) == 1 and differs(A["all"][probe], A["all"][raw]) == 1
    assert differs(A["all"][probe], A["all"][scratch]) == 0 and differs(A["all"][probe], A["all"][ft]) == 0
    # B: the supervised-pretrained network wins the transfer from 10 labels per class on
    sup, sim = "supervised-pretrained h (linear probe)", "SimCLR-pretrained h (linear probe)"
    assert all(differs(B[k][sup], B[k][sim]) == 1 for k in ("10", "100", "all"))
    for k in ("10", "all"):
        assert differs(B[k]["supervised-pretrained fine-tuned"], B[k]["SimCLR-pretrained fine-tuned"]) == 1
    assert differs(B["10"][sim], B["10"][rand]) == -1 and differs(B["100"][sim], B["100"][rand]) == 0
    assert differs(B["all"][sim], B["all"][rand]) == 1
    assert differs(B["all"]["SimCLR-pretrained fine-tuned"], B["all"][scratch]) == -1
    one = [v["mean"] for m, v in B["1"].items() if m != "n_labels"]
    assert all(differs(B["1"][m], B["1"][n]) == 0 for m in B["1"] for n in B["1"] if "n_labels" not in (m, n))
    assert (min(one), max(one)) == (B["1"][scratch]["mean"], B["1"][rand]["mean"])  # "between ... and ..."
    # the projection head: h beats z from 10 labels per class on; no head below with 100 per class, not shown with all
    for k in ("10", "100", "all"):
        assert differs(A[k][probe], A[k]["SimCLR z = g(h) (linear probe)"]) == 1
    assert differs(A["1"][probe], A["1"]["SimCLR z = g(h) (linear probe)"]) == 0
    assert differs(A["100"][probe], A["100"]["no-head SimCLR h (linear probe)"]) == 1
    assert _phenomenon_rows("P6")["P6 head vs no head (linear)"]["verdict"] == "not shown"
    inv, rot = r["invariance"], r["rotation_probe"]
    assert inv["z"]["pos_neg_ratio"] < inv["h"]["pos_neg_ratio"] and rot["h"] > rot["z"] + 0.1
    assert f"{100 * rot['h']:.0f}% vs {100 * rot['z']:.0f}%" in "\n".join(_findings("09_simclr_vs_supervised"))
    assert f"{100 * rot['h']:.0f}% 对 {100 * rot['z']:.0f}%" in "\n".join(_findings("09_simclr_vs_supervised"))


def _phenomenon_rows(p: str) -> dict:
    return {r["id"]: r for r in _phenomena_rows() if r["phenomenon"] == p}


def test_02_an_intermediate_tau_is_best_by_knn_and_the_linear_probe_barely_cares():
    v = _result("02_temperature")["variants"]
    knn = {k: x["knn"]["mean"] for k, x in v.items()}
    assert max(knn, key=knn.get) == "tau=0.2" and list(v)[0] != "tau=0.2" != list(v)[-1]  # "both ends lose"
    assert max(v, key=lambda k: v[k]["knn"]["sd"]) == "tau=0.05"  # "the largest sd"
    p5 = _phenomenon_rows("P5")
    assert p5["P5 tau=0.2 vs tau=1 (knn)"]["verdict"] == "shown"
    assert p5["P5 tau=0.2 vs tau=0.05 (knn)"]["verdict"] == "not shown"
    assert p5["P5 tau=0.2 vs tau=0.05 (knn)"]["mean"] > p5["P5 tau=0.2 vs tau=1 (knn)"]["mean"]  # "larger"
    assert all(r["verdict"] == "not shown" and abs(r["mean"]) < 1 for k, r in p5.items() if "linear" in k)
    rand = _result("02_temperature")["baselines"]["random init"]["linear"]
    assert all(differs(x["linear"], rand) == 1 for x in v.values())  # "all well above random init"
    loss = [sum(x["final_loss"]) for k, x in v.items() if k != "tau=0.05"]
    assert loss == sorted(loss)  # the final loss rises with tau from 0.1 on


def test_07_more_negatives_at_a_fixed_batch_help_knn_a_little_and_not_the_linear_probe():
    neg = _results("07_small_batches")[1]
    v, rand = neg["variants"], neg["baselines"]["random init"]
    knn = [x["knn"]["mean"] for x in v.values()]  # in order of the negatives per anchor
    assert [x["negatives"] for x in v.values()] == sorted(x["negatives"] for x in v.values())
    assert knn[0] < knn[1] < knn[2] and abs(knn[3] - knn[2]) < 0.005  # "rises ..., then stays"
    p3 = _phenomenon_rows("P3")
    k, lin = (next(r for i, r in p3.items() if i.endswith(f"({m})")) for m in ("knn", "linear"))
    assert k["verdict"] == "shown" and k["mean"] < 1.5 and lin["verdict"] == "not shown"  # "barely above"
    assert all(differs(x["linear"], rand["linear"]) == 1 for x in v.values())  # "every arm far above random init"


def test_08_a_long_run_pays_and_its_curve_flattens():
    long = _results("08_visualizing_representations")[1]
    (run,) = long["variants"].values()
    knn = [p["knn"]["mean"] for p in run["curve"]]
    assert knn[:-1] == sorted(knn[:-1]) and knn[1] - knn[0] > 0.01 > abs(knn[-1] - knn[-2])  # "flattens"
    p1 = _phenomenon_rows("P1")
    short, longer = p1["P1 (knn)"], p1[f"P1 {long['steps']:,} steps (knn)"]
    assert longer["verdict"] == p1[f"P1 {long['steps']:,} steps (linear)"]["verdict"] == "shown"
    assert longer["mean"] > 2 * short["mean"]  # "more than twice the kNN gain"
    assert p1[f"P1 {long['steps']:,} steps (linear)"]["mean"] > p1["P1 (linear)"]["mean"]
    assert longer["mean"] >= 4 and p1[f"P1 {long['steps']:,} steps (linear)"]["mean"] >= 2.5  # the design's aim
