"""Formats the batch results of an experiment group as Markdown tables.

    python3 experiments/table.py OUT/GROUP VARIANT [VARIANT ...]

Reads OUT/GROUP/VARIANT/results.json (written by `hisdf batch`) and prints
two tables: the paper's metrics (CD * 10^3 on 10,000 points, EMD on 500
points) per shape and variant, as the paper's tables show them, and every
metric of ours (point-to-mesh Chamfer, Hausdorff, normal consistency,
F-score, components, the network's held-out SDF error, timings). All
distances are in the unit-sphere frame of the original mesh. Standard
library only: the GPU machine has no extra packages."""

import json
import os
import sys


def load(folder, variant):
    path = os.path.join(folder, variant, "results.json")
    try:
        with open(path) as f:
            return json.load(f)["results"]
    except (OSError, ValueError, KeyError):
        return []


def fmt(x, digits=4, sci=False):
    if x is None:
        return "-"
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return "-"
    if sci:
        return f"{x:.2e}"
    return f"{x:.{digits}g}" if isinstance(x, float) else str(x)


def main():
    folder, variants = sys.argv[1], sys.argv[2:]
    rows = {}  # shape id -> {variant: record}
    order = []
    for v in variants:
        for r in load(folder, v):
            if r["id"] not in rows:
                rows[r["id"]] = {}
                order.append(r["id"])
            rows[r["id"]][v] = r
    # A variant taken from another group (encodings' plain = quality's
    # detail) covers more shapes: keep those every variant has.
    order = [i for i in order if all(v in rows[i] for v in variants)] or order
    order.sort(key=lambda i: min(rows[i][v]["index"] for v in rows[i]))

    print(f"### {os.path.basename(folder.rstrip('/'))}: the paper's metrics\n")
    print("CD = Chamfer distance x 10^3 (10,000 points), EMD = Earth Mover's distance "
          "(500 points), unit-sphere frame; '-' = no surface or a failed run.\n")
    print("| shape | " + " | ".join(f"{v} CD | {v} EMD" for v in variants) + " |")
    print("|---|" + "---|---|" * len(variants))
    for i in order:
        cells = []
        for v in variants:
            r = rows[i].get(v)
            m = (r or {}).get("metrics") or {}
            ok = r is not None and r.get("status") == "ok"
            cells.append(fmt(m.get("chamfer", 0) * 1e3 if ok else None, 4))
            cells.append(fmt(m.get("emd") if ok else None, 4))
        print(f"| {i} | " + " | ".join(cells) + " |")

    print(f"\n### {os.path.basename(folder.rstrip('/'))}: every metric\n")
    print("p2m = point-to-mesh Chamfer x 10^3 (no sampling floor); H99 = the larger "
          "99th-percentile Hausdorff distance of the two directions; Hmax = Hausdorff "
          "maximum over the samples; NC = normal consistency; F = F-score at the "
          "threshold; comp = components of the original / of the reconstruction; "
          "sdf MAE and sign err = the network on held-out samples near the surface; "
          "check = the convergence check's failures after training (ok: none); "
          "s = seconds (train / extract).\n")
    print("| shape | variant | p2m | H99 | Hmax | NC | F | comp | sdf MAE | sign err | "
          "check | final loss | train s | extract s | note |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for i in order:
        for v in variants:
            r = rows[i].get(v)
            if r is None:
                continue
            m = r.get("metrics") or {}
            s = r.get("seconds") or {}
            ok = r.get("status") == "ok"
            note = "" if ok else (r.get("error") or "failed").replace("|", "/")[:120]
            h99 = None
            if "hausdorff_p99_ref_to_other" in m:
                h99 = max(m["hausdorff_p99_ref_to_other"], m["hausdorff_p99_other_to_ref"])
            comps = "-"
            if "components_reference" in m:
                comps = f"{m['components_reference']} / {m.get('components_other', '-')}"
                if "components_other_significant" in m:
                    comps += (f" ({m['components_other_significant']}, "
                              f"{100 * max(m['components_other_extra_area_share'], 0.0):.2g}%)")
            conv = r.get("convergence") or {}
            failures = [f.get("kind", "?") for f in conv.get("findings", [])
                        if f.get("kind") != "fragmented-surface"]
            check = ", ".join(failures) if failures else ("ok" if conv else "-")
            cp2m = m.get("chamfer_point_to_mesh")
            print("| " + " | ".join([
                i, v,
                fmt(cp2m * 1e3 if ok and cp2m is not None else None, 3),
                fmt(h99 if ok else None, 3),
                fmt(m.get("hausdorff") if ok else None, 3),
                fmt(m.get("normal_consistency") if ok else None, 4),
                fmt(m.get("f_score") if ok else None, 3),
                comps if ok else "-",
                fmt(m.get("sdf_error_near"), 3, sci=True),
                fmt(m.get("wrong_sign_near"), 3),
                check,
                fmt(r.get("final_loss"), 3, sci=True),
                fmt(s.get("train"), 3),
                fmt(s.get("extract"), 3),
                note,
            ]) + " |")


if __name__ == "__main__":
    main()
