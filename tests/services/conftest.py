import hashlib

import pytest

from endoreview.services.projects import ProjectService
from tests.store.dbfixtures import db_url, pg_url, store  # noqa: F401  (fixtures)


def add_video(store, path, frame_count: int = 40, width: int = 48, height: int = 32):  # noqa: F811
    """A video row in the default project for a file that need not exist (the services under test read no pixels).
    The hash is a digest of the path: a real hash's length (the column holds 80 characters; a long pytest-xdist
    temporary path did not fit on PostgreSQL)."""
    project = ProjectService(store).default_project()
    return store.add_video(
        project.id, path=str(path), path_is_relative=False, content_hash="p1:" + hashlib.sha256(str(path).encode()).hexdigest(), size_bytes=1,
        frame_count=frame_count, fps=25.0, width=width, height=height,
    )  # fmt: skip


@pytest.fixture
def video(store, tmp_path):  # noqa: F811
    """A 40-frame 48x32 video in the default project."""
    return add_video(store, tmp_path / "v.mp4")
