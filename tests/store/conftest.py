import pytest

from tests.store.dbfixtures import db_url, pg_url, store  # noqa: F401  (fixtures)


def polyp_video(store, frame_count: int = 100):  # noqa: F811
    """A 48x32 video in a new project whose label set has one class, polyp (segments, masks, boxes)."""
    ls = store.create_label_set("set", [{"name": "polyp", "tasks": ["segment", "mask", "box"]}])
    p = store.create_project("P", ls.id)
    return store.add_video(
        p.id, path="/v/a.mp4", path_is_relative=False, content_hash="p1:a", size_bytes=10,
        frame_count=frame_count, fps=30.0, width=48, height=32,
    )  # fmt: skip


@pytest.fixture
def video(store):  # noqa: F811
    return polyp_video(store)
