"""Lines `curate run` and `curate sweep` print per stage (library code returns Decisions; this prints)."""

from __future__ import annotations

from curate.cli.render import console

ACTION_WORDS = {"run": ("ran", "green"), "skip": ("skipped-unchanged", "dim"), "off": ("off", "dim")}
PLAN_WORDS = {"run": ("would run", "yellow"), "skip": ("skip", "dim"), "off": ("off", "dim")}


def _word(words: dict, action: str, width: int) -> str:
    text, style = words[action]
    return f"[{style}]{text:<{width}}[/]"


def stage_started(decision) -> None:
    console.print(f"[bold]> {decision.stage}[/]: {decision.reason}", highlight=False)


def stage_done(decision) -> None:
    time = f"{decision.seconds:6.1f} s" if decision.action == "run" else "        "
    detail = describe(decision.stage, decision.summary) if decision.action == "run" else decision.reason
    console.print(f"  {decision.stage:<9} {_word(ACTION_WORDS, decision.action, 17)} {time}  {detail}",
                  highlight=False, soft_wrap=True)


def plan(decisions) -> None:
    for d in decisions:
        console.print(f"  {d.stage:<9} {_word(PLAN_WORDS, d.action, 9)}  {d.reason}", highlight=False,
                      soft_wrap=True)


def describe(stage: str, s: dict) -> str:
    """One line of what the stage produced, from its summary."""
    if not s:
        return ""
    if stage == "import":
        return s.get("note") or (f"{s.get('samples_seen', 0)} samples seen: {s.get('added', 0)} added, "
                                 f"{s.get('updated', 0)} updated, {s.get('skipped_files', 0)} files skipped")
    if stage == "clean":
        return f"{s['samples']} samples, {s['quarantined']} quarantined; report {s.get('report')}"
    if stage == "balance":
        splits = ", ".join(f"{k} {v}" for k, v in s["splits"].items())
        return f"splits: {splits}" + (f"; {s['selected']} selected" if s.get("selected") else "") + \
            (f"; {s['negatives']} negatives" if s.get("negatives") else "")
    if stage == "anchors":
        return "coverage@0.5: " + ", ".join(f"{k} {v}" for k, v in s["coverage"].items()) + f"; {s['anchors']}"
    if stage == "train":
        best = s.get("best_val_map50")
        return (f"{s['epochs']} epochs, train loss {s['train_loss']:.3f}"
                + (f", best val mAP@0.5 {best:.3f}" if best is not None else "")
                + (f", {s['images_per_second']:.0f} img/s" if s.get("images_per_second") else ""))
    if stage == "evaluate":
        return (f"{s['images']} {s['split'] or 'usable'} images: VOC mAP@0.5 {s['voc_map50']:.3f}, "
                f"COCO AP {s['coco_ap']:.3f}, AR100 {s['ar100']:.3f}")
    if stage == "report":
        return s["report"]
    return ""
