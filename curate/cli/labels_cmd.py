"""``curate labels DATASET``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from curate.errors import CurateError


def labels_command(
    dataset: str = typer.Argument(..., help="Dataset name."),
    write_map: Path = typer.Option(None, "--write-map", help="Write the proposed groups as an editable "
                                   "label map (YAML) to this file."),
    apply_map: Path = typer.Option(None, "--map", help="Apply a label map (YAML `old: new`)."),
    revert: bool = typer.Option(False, "--revert", help="Put every box back to its imported label."),
    as_json: bool = typer.Option(False, "--json", help="Print vocabulary and groups as JSON."),
) -> None:
    """Label vocabulary across sources and proposed variant groups; apply or revert a label map."""
    import fiftyone as fo

    from curate import labels
    from curate.cli import render_labels

    if not fo.dataset_exists(dataset):
        raise CurateError(f"no dataset named {dataset!r}; fix: `curate import FOLDER --name {dataset}`")
    ds = fo.load_dataset(dataset)
    if apply_map and revert:
        raise CurateError("--map and --revert together: run one, then the other")
    if apply_map:
        changed = labels.apply_mapping(ds, labels.load_mapping(apply_map))
        render_labels.console.print(f"renamed {changed} boxes; undo with `curate labels {dataset} --revert`")
    if revert:
        changed = labels.revert(ds)
        render_labels.console.print(f"restored the imported label of {changed} boxes")
    vocab = labels.vocabulary(ds)
    groups = labels.propose_groups(vocab)
    if write_map:
        write_map.write_text(render_labels.proposal_yaml(groups))
    if as_json:
        typer.echo(json.dumps({"vocabulary": vocab, "groups": [g.to_dict() for g in groups],
                               "active_map": ds.info.get("curate_label_map", {})}, indent=2))
    else:
        render_labels.vocabulary(vocab, groups, write_map)
