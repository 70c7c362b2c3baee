"""The train issue's quality targets for one interpolation model, on sections its training never saw.

    python benchmarks/bench_targets.py [--model auto|NAME|PATH] [--data ../shared/data] [--json out.json]

``--model auto`` (the default) scores what ``fix --model auto`` picks on CUDA for each stack as evaluated
(flowunet for ssTEM, reslice for FIB-SEM at 40 nm when its weights exist; on the CPU fix keeps flowunet for
FIB-SEM too, for speed: ``--model flowunet`` scores that). Sections: ``emrepair train`` holds out every fifth
section (z % 5 == 2) of the stacks it is given; weights trained on isbi2012, vnc_stack1 and
neuroproof_medulla_train1 are scored on those held-out sections, and on neuroproof_medulla_train2, which no
shipped weights saw at all. A grid model (reslice, trained by ``reslice_training`` on the first 80% of
neuroproof_medulla_train1) is scored there on targets whose whole window lies in the last 20%.

Targets (printed with PASS / FAIL):
1. ssTEM (50 nm), single missing section: PSNR >= linear + 1.5 dB, and SSIM above linear blurred to its
   best PSNR (``linear+blur``), on the pooled held-out sections of isbi2012 and vnc_stack1.
2. FIB-SEM decimated to 40 nm, single missing section: PSNR >= linear + 2 dB (NeuroProof 2 unseen, and the
   held-out sections of NeuroProof 1).
3. Runs of 3 missing sections: at every position t, PSNR at least linear's (NeuroProof 2 at 40 nm, and ssTEM
   runs centred on held-out sections; there only the middle section is unseen).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fix import held_out_runs  # noqa: E402

from emrepair.pipelines.eval import evaluate, resolve_auto  # noqa: E402

SSTEM = ("isbi2012_train", "vnc_stack1")
HELD_OUT_FIB = "neuroproof_medulla_train1"
UNSEEN_FIB = "neuroproof_medulla_train2"
EVERY = 10_000   # a limit on held_out_runs that keeps every held-out run


def grid_context(name: str) -> int | None:
    """For a grid model such as reslice (``name``: a model name or checkpoint path), the good sections it uses
    beyond each neighbour of a gap (``grid_repair.repair_context``); None for an interpolation model."""
    from emrepair.engine.grid_repair import repair_context
    from emrepair.models import load_model

    model = load_model(name, device="cpu")[0]
    return repair_context(model) if hasattr(model, "fill_grid") else None


def slab_targets(path: Path, decimate: int, context: int, limit: int) -> list[int]:
    """Single targets of a stack whose whole grid window (neighbours ``decimate`` away and ``context`` more
    sections each side) lies in the held-out last slab of ``reslice_training``; at most ``limit``, spread."""
    from emrepair.io import open_volume
    from emrepair.training.reslice import VAL_FRACTION

    with open_volume(str(path)) as vol:
        depth = vol.shape[0]
    first = depth - max(1, int(round(VAL_FRACTION * depth)))
    targets = [z for z in range(first + decimate * (1 + context), depth - decimate)]
    step = max(1, len(targets) // max(1, limit))
    return targets[::step][:limit]


def pooled(results: list, name: str) -> tuple[float, float, int]:
    """Mean PSNR and SSIM of model ``name`` over every section of several EvalResults."""
    psnrs, ssims = [], []
    for result in results:
        score = result.score(name)
        psnrs += [v for vs in score.psnr_by_t.values() for v in vs]
        ssims += [v for vs in score.ssim_by_t.values() for v in vs]
    return float(np.mean(psnrs)), float(np.mean(ssims)), len(psnrs)


def main() -> None:
    """Run the three target checks and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="auto", help="model name, checkpoint path or auto (fix's pick on CUDA)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--max-sections", type=int, default=24, help="FIB-SEM sections per stack")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = args.model
    report: dict = {"model": model, "checks": []}

    def run(stack: str, **kw):
        path = str(args.data / f"{stack}.h5")
        models = resolve_auto(path, [model], kw.get("decimate", 1), device_type="cuda")
        result = evaluate(path, models, device=args.device, **kw)
        report.setdefault("runs", []).append({"stack": stack, **kw, "result": result.to_dict()})
        return result

    def check(label: str, ok: bool, detail: str) -> None:
        report["checks"].append({"target": label, "pass": bool(ok), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {detail}", flush=True)

    # 1. ssTEM single sections
    def held_out(stack: str, gap: int, decimate: int = 1, limit: int = EVERY) -> list[int]:
        return held_out_runs(args.data / f"{stack}.h5", gap, decimate, limit)

    def scored(result) -> str:
        return next(s.name for s in result.scores if s.name not in ("linear", "flow", "linear+blur"))

    sstem = [run(s, sections=held_out(s, 1)) for s in SSTEM]
    name = scored(sstem[0])
    m_p, m_s, n = pooled(sstem, name)
    l_p, l_s, _ = pooled(sstem, "linear")
    b_p, b_s, _ = pooled(sstem, "linear+blur")
    f_p, f_s, _ = pooled(sstem, "flow")
    check("ssTEM single section >= linear + 1.5 dB", m_p >= l_p + 1.5,
          f"{name} {m_p:.2f} dB vs linear {l_p:.2f} ({m_p - l_p:+.2f}); flow {f_p:.2f}; n={n}")
    check("ssTEM SSIM above the best-blurred linear", m_s > b_s,
          f"{name} SSIM {m_s:.3f} vs linear+blur {b_s:.3f} ({b_p:.2f} dB), linear {l_s:.3f}, flow {f_s:.3f}")
    for result, stack in zip(sstem, SSTEM):
        s = result.score(name)
        print(f"      {stack}: {s.psnr:.2f} / {s.ssim:.3f}; linear {result.score('linear').psnr:.2f} / "
              f"{result.score('linear').ssim:.3f}; linear+blur {result.score('linear+blur').psnr:.2f} / "
              f"{result.score('linear+blur').ssim:.3f}; flow {result.score('flow').psnr:.2f} / "
              f"{result.score('flow').ssim:.3f}")
    # 2. FIB-SEM at 40 nm, single sections
    unseen = run(UNSEEN_FIB, decimate=4, max_sections=args.max_sections)
    name = scored(unseen)
    context = grid_context(name)
    if context is not None:
        picks = slab_targets(args.data / f"{HELD_OUT_FIB}.h5", 4, context, args.max_sections)
    else:
        picks = held_out(HELD_OUT_FIB, 1, 4, args.max_sections)
    fib = {UNSEEN_FIB + " (unseen)": unseen,
           HELD_OUT_FIB + " (held out)": run(HELD_OUT_FIB, decimate=4, sections=picks)}
    for label, result in fib.items():
        s, lin, flow = result.score(name), result.score("linear"), result.score("flow")
        check(f"FIB-SEM 40 nm {label} >= linear + 2 dB", s.psnr >= lin.psnr + 2.0,
              f"{name} {s.psnr:.2f} / {s.ssim:.3f} vs linear {lin.psnr:.2f} / {lin.ssim:.3f} "
              f"({s.psnr - lin.psnr:+.2f}); flow {flow.psnr:.2f} / {flow.ssim:.3f}; n={len(result.cases)}")
    # 3. runs of 3
    runs = {UNSEEN_FIB + " 40 nm": run(UNSEEN_FIB, decimate=4, gap=3, max_sections=max(4, args.max_sections // 3))}
    for stack in SSTEM:
        runs[stack] = run(stack, gap=3, sections=held_out(stack, 3))
    for label, result in runs.items():
        s, lin = result.score(scored(result)), result.score("linear")
        per_t = {t: (float(np.mean(s.psnr_by_t[t])), float(np.mean(lin.psnr_by_t[t]))) for t in sorted(s.psnr_by_t)}
        ok = all(m >= lv for m, lv in per_t.values())
        detail = "; ".join(f"t={t:.2f} {m:.2f} vs {lv:.2f}" for t, (m, lv) in per_t.items())
        check(f"runs of 3, {label}: every t >= linear", ok, f"{scored(result)}: {detail}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
