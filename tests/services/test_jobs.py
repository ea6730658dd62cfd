"""``python -m endoreview.jobs predict`` as a real subprocess: results stream into the store, job state and
progress are recorded, SIGTERM cancels gracefully, logs never name the video file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from endoreview.jobs.protocol import parse_line
from endoreview.services.jobs import JobService
from endoreview.services.library import LibraryService
from endoreview.services.projects import ProjectService
from tests.services.videos import make_video

ROOT = Path(__file__).resolve().parents[2]
ENTRY = (
    "tests.services.simple_predictor"  # ``python -m endoreview.jobs`` with the brightness predictor injected
)


def model_dir(tmp_path: Path, delay: float = 0.0) -> Path:
    d = tmp_path / f"model-{delay}"
    d.mkdir()
    (d / "model.json").write_text(json.dumps({"threshold": 200, "delay_s": delay}))
    return d


def env_for(url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if url:
        env["ENDOREVIEW_DB_URL"] = url
    return env


def test_predict_job_records_predictions_and_progress(store, db_url, tmp_path):
    project = ProjectService(store).default_project()
    lib = LibraryService(store)
    a, _ = lib.import_video(project.id, make_video(tmp_path / "patient_smith_1.mp4", n=12, seed=1))
    b, _ = lib.import_video(project.id, make_video(tmp_path / "patient_smith_2.mp4", n=10, seed=2))
    proc = subprocess.run(
        JobService(None, job_module=ENTRY).command("predict", "--db", db_url, "--video-id", str(a.id),
         "--video-id", str(b.id), "--model", str(model_dir(tmp_path)), "--batch-frames", "4"),
        cwd=ROOT, env=env_for(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [parse_line(x) for x in proc.stdout.splitlines()]
    assert None not in events, "stdout carries only protocol lines"
    assert events[0]["event"] == "started" and events[-1]["event"] == "done"
    assert events[-1]["state"] == "succeeded"
    assert [e["video_id"] for e in events if e["event"] == "video_done"] == [a.id, b.id]
    assert any(e["event"] == "progress" for e in events)
    job = store.get_job(events[0]["job"])
    assert (job.state, job.progress, job.kind) == ("succeeded", 1.0, "predict")
    assert len(job.result["runs"]) == 2
    mv = store.find_model_version(f"model-{0.0}")
    assert mv is not None  # the model directory was registered for provenance
    t = store.timeline_summary(a.id)
    assert t.runs("mask", "suggested") == [(6, 12)]
    labs = store.labels_for_frame(a.id, 8)
    assert {(x.kind, x.origin, x.model_version_id) for x in labs} == {
        ("mask", "predicted", mv.id),
        ("box", "predicted", mv.id),
    }
    # logs name videos by id, never by path or file name
    log_text = Path(job.log_path).read_text()
    for text in (proc.stdout, proc.stderr, log_text):
        assert "patient_smith" not in text
    assert f"video {a.id}" in log_text or f"video {a.id}" in proc.stderr


@pytest.fixture
def sqlite_store(tmp_path):
    """Process-level job behaviour does not depend on the database; these run on SQLite only."""
    from endoreview.store import Store

    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    with Store.open(url, reviewer="alice") as s:
        yield s, url


def test_sigterm_cancels_gracefully_keeping_committed_frames(sqlite_store, tmp_path):
    store, db_url = sqlite_store
    project = ProjectService(store).default_project()
    video, _ = LibraryService(store).import_video(project.id, make_video(tmp_path / "long.mp4", n=60))
    jobs = JobService(store, job_module=ENTRY)
    job = jobs.create(
        "predict",
        video_ids=[video.id],
        model=str(model_dir(tmp_path, delay=0.05)),
        batch_frames=5,
    )
    proc = subprocess.Popen(
        jobs.command(job),
        cwd=ROOT,
        env=jobs.environment(env_for()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    jobs.started(job.id, proc.pid)
    deadline = time.monotonic() + 60
    while True:  # wait until the job is under way with frames committed
        j = store.get_job(job.id)
        if (
            j.state == "running"
            and store.list_prediction_runs(video.id)
            and store.frame_probs(store.list_prediction_runs(video.id)[0].id)
        ):
            break
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert jobs.cancel(job.id)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    events = [parse_line(x) for x in out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["state"] == "cancelled"
    j = store.get_job(job.id)
    assert j.state == "cancelled" and j.finished_at is not None
    (run,) = store.list_prediction_runs(video.id)
    assert run.state == "cancelled" and 0 < run.frames_done < 60
    assert len(store.frame_probs(run.id)) == run.frames_done  # everything that was committed is there
    assert jobs.reap() == []
    again = subprocess.run(
        jobs.command(job), cwd=ROOT, env=jobs.environment(env_for()), capture_output=True, text=True
    )
    assert again.returncode == 2 and "already cancelled" in again.stdout


def test_bad_arguments_and_unreadable_videos_are_reported(sqlite_store, tmp_path):
    store, db_url = sqlite_store
    project = ProjectService(store).default_project()
    lib = LibraryService(store)
    good, _ = lib.import_video(project.id, make_video(tmp_path / "ok.mp4", n=8))
    bad_path = make_video(tmp_path / "gone.mp4", n=8, seed=5)
    bad, _ = lib.import_video(project.id, bad_path)
    bad_path.unlink()
    proc = subprocess.run(
        JobService(None, job_module=ENTRY).command("predict", "--video-id", str(good.id), "--video-id",
         str(bad.id), "--model", str(model_dir(tmp_path))),
        cwd=ROOT, env=env_for(db_url), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [parse_line(x) for x in proc.stdout.splitlines()]
    errors = [e for e in events if e["event"] == "error"]
    assert [e["video_id"] for e in errors] == [bad.id] and "gone.mp4" not in errors[0]["message"]
    assert events[-1]["result"]["failed"][0]["video_id"] == bad.id
    unknown = subprocess.run(
        JobService(None).command("bake"),
        cwd=ROOT,
        env=env_for(db_url),
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2 and "unknown job kind" in unknown.stderr


@pytest.mark.parametrize(
    "line, ok", [('{"event": "progress", "fraction": 0.5}', True), ("warning: x", False), ("{bad", False)]
)
def test_protocol_parse_line(line, ok):
    assert (parse_line(line) is not None) == ok


def test_job_logs_never_show_video_file_names(tmp_path):
    import logging

    from endoreview.jobs.runner import VideoNameScrubber

    scrubber = VideoNameScrubber()
    scrubber.register(7, tmp_path / "Doe_John_1960-01-01.mp4")
    record = logging.LogRecord(
        "core_model",
        logging.ERROR,
        __file__,
        1,
        "cannot decode %s at frame %d",
        (str(tmp_path / "Doe_John_1960-01-01.mp4"), 3),
        None,
    )
    assert scrubber.filter(record)
    assert record.getMessage() == "cannot decode <video 7> at frame 3"
    assert scrubber.scrub("opened Doe_John_1960-01-01.mp4") == "opened <video 7>"


def test_a_short_video_name_is_replaced_only_where_it_stands_whole(tmp_path):
    """Issue 22.8: with a library video named endo.avi the fine-tune log read "result_<video 5>.avi" and
    "<video 5>fm": every "endo" in the text was replaced. Only the name standing whole is."""
    from endoreview.jobs.runner import VideoNameScrubber

    scrubber = VideoNameScrubber()
    scrubber.register(5, tmp_path / "endo.avi")
    text = "endofm finetune wrote result_endo.avi and endo-2.avi; cannot decode endo.avi, proxy of endo ready"
    assert scrubber.scrub(text) == (
        "endofm finetune wrote result_endo.avi and endo-2.avi; cannot decode <video 5>, proxy of <video 5> ready"
    )
    assert scrubber.scrub(f"open {tmp_path / 'endo.avi'}: ok") == "open <video 5>: ok"


def test_a_job_row_chooses_neither_the_code_a_job_imports_nor_the_process_cancel_signals(
    sqlite_store, tmp_path
):
    """Issue 19 row 13: on a shared database anyone can write a job row. A row naming a predictor module must not
    make the job import it, the hidden ``--predictor`` option is gone, and Cancel never signals the row's pid."""
    store, db_url = sqlite_store
    project = ProjectService(store).default_project()
    video, _ = LibraryService(store).import_video(project.id, make_video(tmp_path / "v.mp4", n=6))
    marker = tmp_path / "imported.txt"
    evil = tmp_path / "evil_mod"
    evil.mkdir()
    (evil / "planted_predictor.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nclass P:\n    pass\n", encoding="utf-8"
    )
    jobs = JobService(store, job_module=ENTRY)
    job = jobs.create(
        "predict",
        video_ids=[video.id],
        model=str(model_dir(tmp_path)),
        predictor="planted_predictor:P",
    )
    env = jobs.environment({**env_for(), "PYTHONPATH": f"{ROOT}{os.pathsep}{evil}"})
    proc = subprocess.run(jobs.command(job), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not marker.exists(), "the job imported a module named by its row"
    assert store.get_job(job.id).state == "succeeded"
    hidden = subprocess.run(
        jobs.command("predict", "--db", db_url, "--video-id", str(video.id), "--predictor", "planted_predictor:P"),
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert hidden.returncode == 2 and "--predictor" in hidden.stderr and not marker.exists()

    # a running row that names a process this app did not start: Cancel leaves that process alone
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        row = jobs.create("predict", video_ids=[video.id])
        store.update_job(row.id, state="running", pid=bystander.pid)
        assert JobService(store).cancel(row.id) is False
        time.sleep(0.2)
        assert bystander.poll() is None, "Cancel signalled a process named only by the job row"
    finally:
        bystander.kill()
        bystander.wait()


def test_every_kind_runs_through_one_wrapper_that_records_failures_in_the_job_row(sqlite_store, tmp_path):
    """The registry names the five job kinds; a kind that fails (here: converting a file that is not an Endo-FM
    checkpoint) ends its job row ``failed`` with the reason, never left ``running``."""
    from endoreview.jobs.registry import KINDS, get_kind

    assert set(KINDS) == {"predict", "finetune", "compare", "model-frames", "convert", "proxy"}
    assert all(get_kind(k).name == k for k in KINDS)
    store, db_url = sqlite_store
    bogus = tmp_path / "not_a_checkpoint.pth"
    bogus.write_bytes(b"definitely not a checkpoint")
    jobs = JobService(store)
    job = jobs.create("convert", checkpoint=str(bogus), name="bogus")
    proc = subprocess.run(
        jobs.command(job),
        cwd=ROOT,
        env=jobs.environment(env_for()),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 1, proc.stderr
    events = [parse_line(x) for x in proc.stdout.splitlines()]
    assert events[0]["event"] == "started" and events[-1]["event"] == "done"
    row = store.get_job(job.id)
    assert row.state == "failed" and "not a usable Endo-FM checkpoint" in row.message
    assert store.find_model_version("bogus") is None


def test_analyse_launch_makes_a_predict_job_for_the_chosen_model(store, tmp_path):
    """What the Analyse button starts (``JobService.predict``): a queued predict job row naming the videos and the
    model the resolver picked, and the command that runs that row."""
    model = model_dir(tmp_path)
    launch = JobService(store, job_module=ENTRY).predict([3, 5], str(model))
    job = store.get_job(launch.job_id)
    assert (job.kind, job.state, job.params["video_ids"]) == ("predict", "queued", [3, 5])
    assert job.params["model"] == str(model.resolve())
    assert launch.title == f"Analyse 2 videos with {model.name}"
    assert launch.argv[-4:] == [ENTRY, "predict", "--job-id", str(job.id)]
    assert launch.env["ENDOREVIEW_DB_URL"] == store.raw_url()
