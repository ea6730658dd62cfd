"""The headless CLI, DICOM bad input, prediction-run export, PolypDiag/KUMC through the store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from endoreview.interchange.dicom import extract_dicom_video
from endoreview.interchange.exporter import Exporter, ExportOptions
from endoreview.interchange.importer import Importer
from endoreview.interchange.model import InterchangeError
from endoreview.store.records import LabelKind, ReviewState
from tests.interchange.builders import disk, frame_image, make_dicom_video, make_kvasir, voc, write_img
from tests.interchange.test_import_export import _video


def test_cli_import_check_export(tmp_path, capsys):
    from endoreview.interchange.cli import main

    make_kvasir(tmp_path / "ds" / "Kvasir-SEG", n=2)
    db = tmp_path / "cli.sqlite3"
    assert main(["check", str(tmp_path / "ds")]) == 0
    check = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert check["layout"] == "kvasir-seg" and check["masks"] == 2 and check["boxes"] == 2
    assert main(["--db", str(db), "--project", "study", "import", "dataset", str(tmp_path / "ds")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "progress" and lines[-1]["event"] == "done" and lines[-1]["labels_added"] == 4
    assert (
        main(
            [
                "--db",
                str(db),
                "--project",
                "study",
                "export",
                "yolo-det",
                str(tmp_path / "out"),
                "--reviewed",
                "--frames",
            ]
        )
        == 0
    )
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["labels"] == 4 and done["frames_written"] == 2 and (tmp_path / "out" / "data.yaml").is_file()
    (tmp_path / "bad.csv").write_text("video,start_frame,end_frame,label\ncju0000abc,5,2,polyp\n")
    assert main(["--db", str(db), "--project", "study", "import", "labels", str(tmp_path / "bad.csv")]) == 1
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert "bad.csv:2" in done["failed"][0][1]
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert main(["--db", str(db), "text-region", "1", "--rect", "0", "0", "10", "5"]) == 0
    assert main(["--db", str(db), "text-region", "1", "--rect", "0", "0", "999", "5"]) == 2
    assert "not inside" in capsys.readouterr().out.splitlines()[-1]


def test_dicom_bad_inputs(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\x01\x02garbage")
    with pytest.raises(InterchangeError, match="junk.dcm"):
        extract_dicom_video(junk, tmp_path / "out")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "X"
    ds.preamble = b"\0" * 128
    ds.save_as(tmp_path / "still.dcm", enforce_file_format=True)
    with pytest.raises(InterchangeError) as e:
        extract_dicom_video(tmp_path / "still.dcm", tmp_path / "out")
    assert e.value.field == "TransferSyntaxUID" and "not an encapsulated video" in e.value.reason
    frames = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    raw = make_dicom_video(tmp_path / "a.dcm", frames, fragments=3)  # a stream split over several fragments
    from core_model.video import VideoReader
    from tests.interchange.builders import decode_stream

    with VideoReader(extract_dicom_video(tmp_path / "a.dcm", tmp_path / "f").path) as r:
        assert np.array_equal(np.stack([r[i] for i in range(len(r))]), decode_stream(raw))
    make_dicom_video(tmp_path / "b.dcm", frames)  # same pixels, another study: another pseudonymous id
    assert (
        extract_dicom_video(tmp_path / "a.dcm", tmp_path / "o").pseudo_id
        != extract_dicom_video(tmp_path / "b.dcm", tmp_path / "o").pseudo_id
    )


def test_prediction_run_export_keeps_scores_and_reimports_as_suggestions(store, tmp_path):
    from endoreview.services.predictions import PredictionRecorder

    imp = Importer(store, work_dir=tmp_path / "w")
    imp.import_videos([_video(tmp_path / "v" / "clip.mp4", n=6)])
    v = store.list_videos()[0]
    from tests.interchange.test_export_states import polyp_events

    result = PredictionRecorder(store, v.id, None).record(polyp_events(6, box_score=0.7))
    run_id = result.run.id
    rep = Exporter(store).export(tmp_path / "o", ExportOptions("coco", run_ids=[run_id]))
    doc = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert rep.labels >= 12 and all("score" in a for a in doc["annotations"])
    assert {a["review_state"] for a in doc["annotations"]} == {"suggested"}
    from endoreview.store import Store

    other = Store.open(str(tmp_path / "o.sqlite3"))
    oi = Importer(other, work_dir=tmp_path / "w2")
    oi.import_videos([tmp_path / "v" / "clip.mp4"])
    r = oi.import_annotations(tmp_path / "o" / "annotations.json")
    assert r.ok
    labs = other.labels_for_video(other.list_videos()[0].id, kinds=["mask"])
    assert len(labs) == 6 and all(
        lab.state == ReviewState.SUGGESTED and lab.score == pytest.approx(0.8) for lab in labs
    )
    other.close()


def test_polypdiag_and_kumc_through_the_store(store, tmp_path):
    root = tmp_path / "PolypDiag"
    for n, seed in (("a", 1), ("b", 2)):
        _video(root / "videos" / f"{n}.mp4", n=4, seed=seed)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("a.mp4,1\n")
    (root / "splits" / "val.txt").write_text("b.mp4,0\n")
    imp = Importer(store, work_dir=tmp_path / "w")
    rep = imp.import_dataset(root)
    assert rep.ok and rep.labels_added == 2
    classes = {
        store.get_video(vid).meta["import"]["name"]: [lab.class_name for lab in store.labels_for_video(vid)]
        for vid in rep.videos_created
    }
    assert classes == {"a": ["abnormal"], "b": ["normal"]}
    assert {store.get_video(vid).meta["import"]["split"] for vid in rep.videos_created} == {"train", "val"}

    k = tmp_path / "KUMC" / "PolypsSet" / "val2019"
    for i in range(1, 4):
        write_img(k / "Image" / "12" / f"{i}.jpg", frame_image(32, 40, i))
    (k / "Annotation" / "12").mkdir(parents=True)
    (k / "Annotation" / "12" / "2.xml").write_text(voc("2.jpg", 40, 32, [("adenomatous", 5, 6, 20, 25)]))
    rep = imp.import_dataset(tmp_path / "KUMC")
    assert rep.ok and rep.labels_added == 1
    vid = rep.videos_created[0]
    box = store.labels_for_video(vid, kinds=[LabelKind.BOX])[0]
    assert box.frame == 1 and box.bbox == (4.0, 5.0, 20.0, 25.0) and box.class_name == "adenomatous"


def test_binary_mask_folder_for_a_video_file_one_based(store, tmp_path):
    imp = Importer(store, work_dir=tmp_path / "w")
    imp.import_videos([_video(tmp_path / "v" / "clip.mp4", n=5)])
    vid = store.list_videos()[0].id
    m = disk(48, 64, 30, 20, 8)
    for n in (1, 5):  # 1-based names as exported by many tools: frames 0 and 4
        write_img(tmp_path / "gt" / f"{n:04d}.png", (m * 255).astype(np.uint8))
    rep = imp.import_annotations(tmp_path / "gt", layout="mask-folder", video_id=vid, base=1)
    assert rep.ok and sorted(lab.frame for lab in store.labels_for_video(vid)) == [0, 4]
    write_img(tmp_path / "gt" / "0006.png", (m * 255).astype(np.uint8))
    rep = imp.import_annotations(tmp_path / "gt", layout="mask-folder", video_id=vid, base=1)
    assert rep.failed and "0006.png" in rep.failed[0][1] and len(store.labels_for_video(vid)) == 2


def test_coco_dataset_with_missing_image_fails_that_video_only(store, tmp_path):
    for k in range(2):
        write_img(tmp_path / "ds" / "caseA" / f"{k}.jpg", frame_image(20, 20, k))
        write_img(tmp_path / "ds" / "caseB" / f"{k}.jpg", frame_image(20, 20, k))
    imgs = [
        {"id": i, "file_name": f"{c}/{k}.jpg", "width": 20, "height": 20}
        for i, (c, k) in enumerate([(c, k) for c in "AB" for k in range(2)])
    ]
    for im in imgs:
        im["file_name"] = "case" + im["file_name"]
    imgs.append({"id": 9, "file_name": "caseB/7.jpg", "width": 20, "height": 20})
    doc = {
        "images": imgs,
        "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "polyp"}],
    }
    (tmp_path / "ds" / "coco.json").write_text(json.dumps(doc))
    rep = Importer(store, work_dir=tmp_path / "w").import_dataset(tmp_path / "ds" / "coco.json")
    assert len(rep.videos_created) == 1 and rep.labels_added == 1
    assert rep.failed[0][0] == "caseB" and "7.jpg" in rep.failed[0][1]


def test_import_hygiene_no_qt_no_torch_and_format_layer_without_database():
    import subprocess
    import sys

    code = (
        "import sys; import endoreview.interchange.detect;"
        "bad = [m for m in ('torch', 'PySide6', 'pyqtgraph', 'sqlalchemy') if m in sys.modules];"
        "import endoreview.interchange.importer, endoreview.interchange.exporter, endoreview.interchange.cli;"
        "bad += [m for m in ('torch', 'PySide6', 'pyqtgraph') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
