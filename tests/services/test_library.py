"""Importing, finding, relinking and removing videos."""

from __future__ import annotations

import shutil

import pytest

from endoreview.services.hashing import content_hash
from endoreview.services.library import LibraryService, VideoImportError
from endoreview.services.projects import ProjectService
from endoreview.store.records import NewLabel
from tests.services.videos import make_image_folder, make_video


@pytest.fixture
def project(store):
    return ProjectService(store).default_project()


def test_default_label_set_has_the_documented_classes(store):
    ps = ProjectService(store)
    ls = ps.default_label_set()
    assert [(c.name, c.tasks, c.shortcut) for c in ls.classes] == [
        ("normal", ("video_class",), "N"),
        ("abnormal", ("video_class",), "A"),
        ("polyp", ("segment", "mask", "box"), "P"),
    ]
    assert all(c.color.startswith("#") for c in ls.classes)
    assert ps.default_label_set().id == ls.id  # created once
    assert ps.label_set_of(ps.default_project().id).id == ls.id
    assert [c.name for c in ls.classes_for("mask")] == ["polyp"]


def test_import_reads_metadata_stores_relative_path_and_recognises_the_same_file(store, project, tmp_path):
    root = tmp_path / "library"
    v = make_video(root / "site1" / "patient_x.mp4", n=12)
    lib = LibraryService(store, library_root=root)
    video, created = lib.import_video(project.id, v)
    assert created
    assert (video.path, video.path_is_relative) == ("site1/patient_x.mp4", True)
    assert (video.frame_count, video.width, video.height, video.fps) == (12, 64, 48, 25.0)
    assert video.content_hash == content_hash(v) and video.size_bytes == v.stat().st_size
    assert lib.resolve_path(video) == v.resolve()
    again, created = lib.import_video(project.id, v)
    assert (again.id, created) == (video.id, False)
    # a second workstation with the library mounted elsewhere finds the same file
    other_root = tmp_path / "mnt" / "videos"
    shutil.copytree(root, other_root)
    assert LibraryService(store, library_root=other_root).resolve_path(video).exists()


def test_import_paths_walks_folders_and_reports_bad_files(store, project, tmp_path):
    make_video(tmp_path / "in" / "a.mp4", seed=1)
    make_video(tmp_path / "in" / "sub" / "b.mkv", seed=2)
    make_image_folder(tmp_path / "in" / "seq")
    (tmp_path / "in" / "broken.mp4").write_bytes(b"not a video at all")
    res = LibraryService(store).import_paths(project.id, [tmp_path / "in", tmp_path / "missing.mp4"])
    assert sorted(v.meta["name"] for v in res.imported) == ["a.mp4", "b.mkv", "seq"]
    assert [v.frame_count for v in res.imported if v.meta["name"] == "seq"] == [6]
    failed = dict(res.failed)
    assert set(failed) == {str(tmp_path / "in" / "broken.mp4"), str(tmp_path / "missing.mp4")}
    assert "does not exist" in failed[str(tmp_path / "missing.mp4")]
    assert len(store.list_videos()) == 3


def test_search_filter_and_review_status(store, project, tmp_path):
    lib = LibraryService(store)
    a, _ = lib.import_video(project.id, make_video(tmp_path / "colon_case_17.mp4", seed=1))
    b, _ = lib.import_video(project.id, make_video(tmp_path / "gastro_case_18.mp4", seed=2))
    lib.set_review_status(b.id, "reviewed", expected_version=b.version)
    lib.assign_reviewer(a.id, "dr_q")
    assert [v.id for v in lib.list_videos(search="colon")] == [a.id]
    assert [v.id for v in lib.list_videos(status="reviewed")] == [b.id]
    assert [v.id for v in lib.list_videos(assigned_to="dr_q")] == [a.id]
    assert [v.id for v in lib.list_videos(status="unreviewed")] == [a.id]


def test_relink_moved_files_by_content(store, project, tmp_path):
    lib = LibraryService(store)
    src = make_video(tmp_path / "old" / "case.mp4", seed=3)
    video, _ = lib.import_video(project.id, src)
    moved = tmp_path / "new" / "renamed.mp4"
    moved.parent.mkdir()
    src.rename(moved)
    make_video(tmp_path / "new" / "other.mp4", seed=4)
    assert [v.id for v in lib.missing_videos()] == [video.id]
    relinked = lib.relink([tmp_path / "new"])
    assert [v.id for v in relinked] == [video.id]
    assert lib.resolve_path(store.get_video(video.id)) == moved.resolve()
    assert lib.missing_videos() == []
    with pytest.raises(VideoImportError, match="not the same recording"):
        lib.relink_video(video.id, tmp_path / "new" / "other.mp4")


def test_remove_video_purges_cache_files_and_keeps_labels_unless_asked(store, project, tmp_path):
    from endoreview.media.proxy import default_proxy_path
    from endoreview.paths import cache_dir

    lib = LibraryService(store)
    src = make_video(tmp_path / "case.mp4")
    video, _ = lib.import_video(project.id, src)
    proxy = default_proxy_path(src)
    proxy.parent.mkdir(parents=True, exist_ok=True)
    proxy.write_bytes(b"proxy")
    proxy.with_suffix(".proxy.json").write_text("{}")
    thumbs = cache_dir() / "thumbnails"
    thumbs.mkdir(parents=True, exist_ok=True)
    (thumbs / "case-0123456789abcdef.png").write_bytes(b"png")
    (thumbs / "unrelated-0123456789abcdef.png").write_bytes(b"png")
    store.add_labels([NewLabel(video.id, "segment", "polyp", start_frame=0, end_frame=4)])
    counts = lib.remove_video(video.id)
    assert counts["cache_files"] == 3 and not proxy.exists()
    assert (thumbs / "unrelated-0123456789abcdef.png").exists()
    assert src.exists(), "the video file itself is never deleted"
    assert lib.list_videos() == [] and len(store.labels_for_video(video.id)) == 1
    again, created = lib.import_video(project.id, src)  # importing it again brings it back with its labels
    assert (again.id, created, again.removed_at) == (video.id, False, None)
    lib.remove_video(video.id, purge_labels=True)
    assert store.labels_for_video(video.id) == []


def test_new_projects_get_the_default_label_set_from_settings(tmp_path, monkeypatch, capsys):
    """Issue 22 item 12: Settings' "default label set" is what new projects get (app and command line)."""

    from endoreview.interchange.cli import main
    from endoreview.services.app_settings import Settings, save_settings
    from endoreview.services.projects import DEFAULT_LABEL_SET, ProjectService
    from endoreview.store import Store

    monkeypatch.setenv("ENDOREVIEW_DATA_DIR", str(tmp_path / "data"))
    db = str(tmp_path / "p.sqlite3")
    store = Store.open(db)
    try:
        lesions = ProjectService(store).create_label_set(
            "Colon lesions",
            [{"name": "adenoma", "color": "#ff0000", "shortcut": "1", "tasks": ["mask", "box"]}],
        )
        save_settings(Settings(default_label_set="Colon lesions"))
        main(["--db", db, "--project", "study B", "import", "videos", str(tmp_path / "nothing.mp4")])
        capsys.readouterr()
        assert store.get_project(store.find_project("study B").id).label_set_id == lesions.id
        from endoreview.services.app_settings import load_settings

        svc = ProjectService(store, load_settings().default_label_set)
        assert svc.create_project("study C").label_set_id == lesions.id
        missing = ProjectService(store, "No such set").create_project("study D")  # falls back, logged
        assert store.get_label_set(missing.label_set_id).name == DEFAULT_LABEL_SET
    finally:
        store.close()
