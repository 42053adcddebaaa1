#!/usr/bin/env python3
"""Mean +- std over seeds of the test metric of each dataset and variant in a results folder
written by bench/chemberta_results.sh (standard library only)."""
import json, os, statistics, sys

out = sys.argv[1]
metric = {"esol": ("test_rmse", "RMSE, lower is better"), "bbbp": ("test_roc_auc", "ROC-AUC"),
          "tox21": ("test_roc_auc", "ROC-AUC, mean of 12 tasks")}
published = {"esol": ("1.697", "0.920"), "bbbp": ("0.694", "0.700"), "tox21": ("0.674", "0.718")}
rows = [("(a) small preset, from scratch", "scratch", None), ("(b) small preset, attnscope-pretrained", "pretrained", None),
        ("(c) ECFP4 + random forest (XGBoost)", "baseline", "rf"), ("(c') ECFP4 + boosted trees (XGBoost)", "baseline", "xgb")]

def values(ds, kind, model):
    vals, seeds = [], []
    for name in sorted(os.listdir(out)):
        if not name.startswith(f"{ds}-{kind}-s"):
            continue
        f = os.path.join(out, name, "baseline_metrics.json" if model else "test_metrics.json")
        if not os.path.exists(f):
            continue
        j = json.load(open(f))
        v = (j[model] if model else j).get(metric[ds][0])
        if v is not None:
            vals.append(v)
            seeds.append(name.rsplit("-s", 1)[1])
    return vals, seeds

print("| | " + " | ".join(f"{ds.upper()} test {metric[ds][0][5:]} ({metric[ds][1]})" for ds in metric) + " |")
print("|---|" + "---|" * len(metric))
for label, kind, model in rows:
    cells = []
    for ds in metric:
        v, seeds = values(ds, kind, model)
        if not v:
            cells.append("not run")
        elif len(v) == 1:
            cells.append(f"{v[0]:.3f} (seed {seeds[0]})")
        else:
            cells.append(f"**{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}** (n={len(v)})")
    print(f"| {label} | " + " | ".join(cells) + " |")
print("| published: RF on ECFP (ChemBERTa-3 README, DeepChem scaffold split, 3 runs) | " +
      " | ".join(published[ds][0] for ds in metric) + " |")
print("| published: ChemBERTa-MLM-100M (same source) | " + " | ".join(published[ds][1] for ds in metric) + " |")
