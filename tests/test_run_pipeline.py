"""`curate run`: real stages on generated LabelImg folders in the test database, real (tiny) training.

A full run, then a re-run that skips every stage; a changed setting re-runs only train -> evaluate ->
report; a new source file re-runs from import; a change to the dataset made outside `curate run` (tags,
labels, boxes) re-runs train; a run killed mid-training (half a metrics row written) resumes from its
checkpoint, unless train is forced.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from factories import keep_database_up

from curate.errors import CurateError
from curate.fingerprint import changed_settings, folder_listing
from curate.formats.files import walk_files
from curate.pipeline import forced_stages, make_pipeline
from curate.pipeline_state import PipelineState
from curate.recipe import load_recipe, with_overrides
from curate.synth import write_labelimg_folder

PROJECT = Path(__file__).resolve().parents[1]
IMAGES = 40


def write_recipe(tmp: Path, dataset: str, data: Path, **sections) -> Path:
    recipe = {"version": 1, "name": "pipe", "dataset": dataset,
              "sources": [{"path": str(data), "format": "labelimg", "source": "synthetic"}],
              "balance": {"fractions": [0.7, 0.3, 0.0]}, "anchors": {"fit": False},
              "model": {"backbone": "tiny", "image_size": [64, 64]}, "augment": {"preset": "none"},
              "train": {"epochs": 1, "batch_size": 8, "workers": 0, "lr": 0.05, "warmup_epochs": 0,
                        "val_every": 1},
              "evaluate": {"split": "val"}}
    for section, values in sections.items():
        recipe[section] = {**recipe.get(section, {}), **values}
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    return write_labelimg_folder(tmp_path / "labels", IMAGES, width=160, height=120, max_boxes=3)


def actions(decisions) -> dict[str, str]:
    return {d.stage: d.action for d in decisions}


def run(recipe_path: Path, run_dir: Path, recipe=None, **options):
    recipe = recipe or load_recipe(recipe_path)
    return make_pipeline(recipe, recipe_path, run_dir, progress=False, **options).run()


@pytest.mark.slow
def test_full_run_from_the_cli_then_a_rerun_skips_every_stage(tmp_path, data, dataset_name, curate_cmd,
                                                              curate_env):
    keep_database_up()
    recipe = write_recipe(tmp_path, dataset_name, data, anchors={"fit": True})
    command = curate_cmd + ["run", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]
    first = subprocess.run(command, capture_output=True, text=True, env=curate_env, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    state = json.loads((tmp_path / "run" / "pipeline.json").read_text())["stages"]
    assert {name: s["status"] for name, s in state.items()} == {
        name: "done" for name in ("import", "clean", "balance", "anchors", "train", "evaluate", "report")}
    assert state["import"]["summary"]["added"] == IMAGES
    for name in ("anchors.yaml", "anchors.png", "clean/report.json", "last.pt", "eval.json", "report.html",
                 "pipeline-recipe.yaml"):
        assert (tmp_path / "run" / name).is_file(), name
    trained_with = load_recipe(tmp_path / "run" / "pipeline-recipe.yaml")
    assert trained_with.anchors.scales, "the fitted anchors reach the trainer"
    printed = " ".join(first.stdout.split())  # rich wraps at the terminal's width
    assert "7 of 7 stages ran" in printed and f"curate review {dataset_name}" in printed

    second = subprocess.run(command, capture_output=True, text=True, env=curate_env, cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "0 of 7 stages ran" in " ".join(second.stdout.split())
    assert second.stdout.count("skipped-unchanged") == 7


@pytest.mark.slow
def test_a_changed_setting_and_a_new_file_rerun_only_what_depends_on_them(tmp_path, data, dataset_name):
    recipe_path = write_recipe(tmp_path, dataset_name, data)
    run_dir = tmp_path / "run"
    assert set(actions(run(recipe_path, run_dir)).values()) == {"run", "off"}

    faster = with_overrides(load_recipe(recipe_path), {"train.lr": 0.02})
    plan = make_pipeline(faster, recipe_path, run_dir, progress=False).plan()
    assert "changed setting: train.lr 0.05 -> 0.02" in plan[4].reason
    assert actions(run(recipe_path, run_dir, faster)) == {
        "import": "skip", "clean": "skip", "balance": "skip", "anchors": "off",
        "train": "run", "evaluate": "run", "report": "run"}

    for suffix in ("jpg", "xml"):  # one more annotated image in the source folder
        shutil.copy(data / f"img_00000.{suffix}", data / f"extra.{suffix}")
    decisions = run(recipe_path, run_dir, faster)
    assert decisions[0].reason == f"source files: {2 * IMAGES + 2} (was {2 * IMAGES})"
    assert actions(decisions) == {"import": "run", "clean": "run", "balance": "run", "anchors": "off",
                                  "train": "run", "evaluate": "run", "report": "run"}
    assert decisions[0].summary["added"] == 1

    # the dataset changed outside `curate run`: train (and what follows) runs again, nothing before it
    import fiftyone as fo

    from curate import schema
    from curate.labels import apply_mapping

    dataset = fo.load_dataset(dataset_name)
    mined = dataset.take(3, seed=0)  # as `curate negatives --mine` tags background images
    mined.tag_samples([schema.TAG_HARD_NEGATIVE, schema.TAG_NEGATIVE_SELECTED])
    plan = make_pipeline(faster, recipe_path, run_dir, progress=False).plan()
    assert actions(plan) == {"import": "skip", "clean": "skip", "balance": "skip", "anchors": "off",
                             "train": "run", "evaluate": "run", "report": "run"}
    assert plan[4].reason == "dataset changed: tags hard_negative 0 -> 3, negative_selected 0 -> 3"
    mined.untag_samples([schema.TAG_HARD_NEGATIVE, schema.TAG_NEGATIVE_SELECTED])
    assert actions(make_pipeline(faster, recipe_path, run_dir).plan())["train"] == "skip"

    label = dataset.distinct("ground_truth.detections.label")[0]
    apply_mapping(dataset, {label: "renamed"})  # `curate labels --map`
    assert make_pipeline(faster, recipe_path, run_dir).plan()[4].reason.startswith("dataset changed: labels ")
    apply_mapping(dataset, {"renamed": label})

    sample = dataset.match(fo.ViewField("ground_truth.detections").length() > 0).first()
    x, y, w, h = sample.ground_truth.detections[0].bounding_box  # `curate clean --fix` clips a box
    sample.ground_truth.detections[0].bounding_box = [x, y, w / 2, h]
    sample.save()
    assert make_pipeline(faster, recipe_path, run_dir).plan()[4].reason == \
        "dataset changed: boxes (coordinates edited)"


def _train_epochs_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_from_its_checkpoint(tmp_path, data, dataset_name, curate_cmd,
                                                               curate_env):
    keep_database_up()
    recipe_path = write_recipe(tmp_path, dataset_name, data, train={"epochs": 6, "batch_size": 4})
    run_dir = tmp_path / "run"
    command = curate_cmd + ["run", str(recipe_path), "--out", str(run_dir), "--no-progress"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=curate_env,
                            start_new_session=True)  # its own process group: the trainer child dies too
    deadline = time.monotonic() + 300
    while _train_epochs_logged(run_dir) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads((run_dir / "pipeline.json").read_text())["stages"]
    assert state["train"]["status"] == "running" and "evaluate" not in state
    killed_at = _train_epochs_logged(run_dir)
    assert 1 <= killed_at < 6, "the run was not interrupted mid-training"
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"epoch": 99, "train_lo')  # as if killed while writing a row

    plan = make_pipeline(load_recipe(recipe_path), recipe_path, run_dir, progress=False).plan()
    assert "interrupted" in plan[4].reason and "resumes from last.pt" in plan[4].reason
    decisions = run(recipe_path, run_dir)
    assert actions(decisions)["balance"] == "skip" and actions(decisions)["train"] == "run"
    train = decisions[4].summary
    assert train["resumed"] and train["resumed_from"] >= killed_at - 1 and train["epochs"] == 6
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1] == 6 and epochs == sorted(epochs)


def test_dry_run_says_never_ran_and_runs_nothing(tmp_path, data, dataset_name):
    recipe_path = write_recipe(tmp_path, dataset_name, data, anchors={"fit": True})
    plan = make_pipeline(load_recipe(recipe_path), recipe_path, tmp_path / "run").plan()
    assert [(d.stage, d.action, d.reason) for d in plan][:5] == [
        ("import", "run", "never ran"), ("clean", "run", "never ran"), ("balance", "run", "never ran"),
        ("anchors", "run", "never ran"), ("train", "run", "never ran")]
    assert not (tmp_path / "run" / "pipeline.json").exists()


def test_a_failed_train_resumes_unless_forced_and_half_a_metrics_row_is_skipped(tmp_path, data,
                                                                                dataset_name):
    recipe_path = write_recipe(tmp_path, dataset_name, data)
    recipe, run_dir = load_recipe(recipe_path), tmp_path / "run"
    train = make_pipeline(recipe, recipe_path, run_dir).plan()[4]
    state = PipelineState.load(run_dir)  # train with this fingerprint was interrupted after epoch 1
    state.mark_running("train", fingerprint=train.fingerprint, settings=train.settings, inputs=train.inputs)
    state.mark_failed("train", "KeyboardInterrupt: ")
    for name in ("last.pt", "manifest.jsonl"):
        (run_dir / name).write_bytes(b"")
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 2.5}\n{"epoch": 2, "train_lo')

    plan = make_pipeline(recipe, recipe_path, run_dir).plan()
    assert plan[4].reason == ("failed last time (KeyboardInterrupt: ); training resumes from last.pt "
                              "(epoch 1 logged)")
    forced = make_pipeline(recipe, recipe_path, run_dir, forced={"train"}).plan()
    assert forced[4].reason == "forced"  # starts afresh: --force never resumes


def test_a_missing_source_folder_names_the_recipe_and_the_source(tmp_path, dataset_name):
    recipe_path = write_recipe(tmp_path, dataset_name, tmp_path / "nowhere")
    with pytest.raises(CurateError, match=r"recipe.yaml: sources\[0\]: .*nowhere.* is not a folder.*fix"):
        make_pipeline(load_recipe(recipe_path), recipe_path, tmp_path / "run").plan()


def test_stage_names_are_checked_and_from_forces_the_rest():
    assert forced_stages(["clean"], "evaluate") == {"clean", "evaluate", "report"}
    with pytest.raises(CurateError, match="did you mean 'train'"):
        forced_stages(["trian"])


def test_folder_listing_sees_new_and_touched_files(tmp_path):
    (tmp_path / "a.xml").write_text("<a/>")
    before = folder_listing(tmp_path)
    (tmp_path / "b.xml").write_text("<b/>")
    added = folder_listing(tmp_path)
    assert (added["files"], added["digest"] != before["digest"]) == (2, True)
    os.utime(tmp_path / "a.xml", ns=(1, 1))
    assert folder_listing(tmp_path)["digest"] != added["digest"]


def test_folder_listing_walks_as_import_does_without_following_links(tmp_path):
    folder, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (folder / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    for path in (folder / "a.xml", folder / "sub" / "b.xml", elsewhere / "c.xml"):
        path.write_text("<x/>")
    (folder / "sub" / "up").symlink_to(folder)  # a loop
    (folder / "other").symlink_to(elsewhere)  # a folder import does not read
    (folder / "c.xml").symlink_to(elsewhere / "c.xml")  # a linked file: import reads it
    listing = folder_listing(folder)
    assert listing["files"] == len(list(walk_files(folder))) == 3
    assert listing["bytes"] == 3 * len("<x/>")


def test_changed_settings_names_each_key():
    assert changed_settings({"train": {"lr": 0.05, "epochs": 2}}, {"train": {"lr": 0.02, "epochs": 2}}) == [
        "train.lr 0.05 -> 0.02"]
