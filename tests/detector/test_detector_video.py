"""Inputs, timing, sampling, the output document and the annotated video, on the real models."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from detector_clips import VFR_TIMES_MS, Clip

from detector.analyzer import AnalyzeOptions, analyze
from detector.output import SCHEMA, frames_of, read_detections
from detector.sample import SampleSpec, write_sample
from detector.scenes import SCENE_SECONDS
from devtools.scoring import score

pytestmark = pytest.mark.slow
HUMAN = AnalyzeOptions(detectors=("human",), tiles="off")


def test_timestamps_are_presentation_times(vfr_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "vfr.json"
    analyze([vfr_clip], out, HUMAN)
    frames = frames_of(read_detections(out))
    assert [f.index for f in frames] == list(range(len(VFR_TIMES_MS)))
    assert [f.t for f in frames] == pytest.approx([ms / 1000 for ms in VFR_TIMES_MS], abs=1e-3)


def test_sampling_by_frame_count_and_by_rate(vfr_clip: Path, tmp_path: Path) -> None:
    analyze([vfr_clip], tmp_path / "every.json", HUMAN.__class__(detectors=("human",), tiles="off", every=4))
    assert [f.index for f in frames_of(read_detections(tmp_path / "every.json"))] == [0, 4, 8]
    analyze([vfr_clip], tmp_path / "fps.json", AnalyzeOptions(detectors=("human",), tiles="off", fps=2.0))
    times = [f.t for f in frames_of(read_detections(tmp_path / "fps.json"))]
    assert times == pytest.approx([0.0, 0.5, 1.0], abs=1e-3)  # by time, not by frame count: the clip is VFR


def test_output_document(small_clip: Clip, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    summary = analyze([small_clip.video], out, AnalyzeOptions(every=5, threshold=0.4))
    doc = json.loads(out.read_text())
    assert list(doc) == ["schema", "source", "video", "detectors", "tiling", "teams", "frames", "tracks", "stats"]
    assert doc["schema"] == SCHEMA
    assert doc["source"] == {"kind": "video", "inputs": [str(small_clip.video)]}
    assert doc["video"] == {"width": 480, "height": 270, "fps": 25.0, "frames": 25, "duration_s": 1.0}
    assert [d["name"] for d in doc["detectors"]] == ["human", "face"]
    assert all(d["threshold"] == 0.4 for d in doc["detectors"])
    assert [f["index"] for f in doc["frames"]] == [0, 5, 10, 15, 20]
    assert doc["stats"]["frames_analyzed"] == summary.frames_analyzed == 5
    (scene,) = doc["tiling"]  # one input, shorter than a scene: one grid, measured on its first frame
    assert (scene["source"], scene["index"], scene["grid"]) == (str(small_clip.video), 0, summary.tiles)
    assert scene["people"] == 2 and scene["probe_inputs"] >= 1
    assert doc["stats"]["model_inputs_per_frame"] == pytest.approx(summary.model_inputs_per_frame, abs=0.01)
    labels = {d["label"] for f in doc["frames"] for d in f["detections"]}
    assert labels == {"person", "face"}
    for det in (d for f in doc["frames"] for d in f["detections"]):
        x0, y0, x1, y1 = det["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and 0 < det["score"] <= 1
        assert det["score"] >= 0.4 or (det["label"] == "person" and "track" in det)  # weaker: continuing a track


def test_images_and_directories_of_images(small_clip: Clip, tmp_path: Path) -> None:
    """Frames saved as images give the same people; each image is one frame named by its file."""
    images = tmp_path / "images"
    images.mkdir()
    with av.open(str(small_clip.video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in (0, 10):
                cv2.imwrite(str(images / f"frame{i:02d}.png"), frame.to_ndarray(format="bgr24"))
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "images.json"
    analyze([images], out, HUMAN)
    doc = read_detections(out)
    assert doc["source"]["kind"] == "images"
    assert [(f["source"], f["index"]) for f in doc["frames"]] == [
        (str(images / "frame00.png"), 0),
        (str(images / "frame10.png"), 0),
    ]
    truth = {f.index: f.detections for f in frames_of(read_detections(small_clip.truth))}
    found = [len(f.detections) for f in frames_of(doc)]
    assert found == [len(truth[0].with_label("person")), len(truth[10].with_label("person"))]

    analyze([images / "frame10.png"], tmp_path / "one.json", HUMAN)
    assert len(read_detections(tmp_path / "one.json")["frames"]) == 1


def test_annotated_video_has_every_analyzed_frame(small_clip: Clip, tmp_path: Path) -> None:
    out, video = tmp_path / "out.json", tmp_path / "annotated.mp4"
    analyze([small_clip.video], out, AnalyzeOptions(every=2, track=False), annotate=video)
    with av.open(str(video)) as container:
        decoded = list(container.decode(video=0))
    frames = [f.to_ndarray(format="rgb24") for f in decoded]
    analyzed = read_detections(out)["frames"]
    assert len(frames) == len(analyzed) == 13
    assert [f.time for f in decoded] == pytest.approx([f["t"] for f in analyzed], abs=1e-3)  # plays at true speed
    # boxes are drawn: the annotated frame differs from the source where a person box edge is
    with av.open(str(small_clip.video)) as container:
        original = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(frames[0].astype(int) - original.astype(int)).max() > 100


def test_tracked_annotation_is_the_whole_video_with_ids(small_clip: Clip, tmp_path: Path) -> None:
    """Track ids are final only once the video is known: the annotation is drawn afterwards, on every frame (a
    frame not analyzed shows the last analyzed frame's boxes)."""
    out, video = tmp_path / "out.json", tmp_path / "annotated.mp4"
    analyze([small_clip.video], out, AnalyzeOptions(every=2), annotate=video)
    with av.open(str(video)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(small_clip.video)) as container:
        original = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == len(original) == 25
    assert all(np.abs(a.astype(int) - b.astype(int)).max() > 100 for a, b in zip(decoded, original, strict=True))


def test_tf2_saved_model_gives_the_same_people(small_clip: Clip, tmp_path: Path) -> None:
    """A SavedModel directory is chosen by path; here the bundled graph re-exported as a TF2 SavedModel."""
    import tensorflow as tf

    from detector.od_models import default_model_path, load_od_model

    graph = load_od_model(default_model_path())

    class Exported(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="input_tensor")])
        def serve(self, input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
            outputs = tf.numpy_function(
                lambda batch: [np.asarray(v, np.float32) for v in vars(graph.run(batch, 0.0)).values()],
                [input_tensor],
                [tf.float32] * 4,
            )
            names = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")
            return dict(zip(names, outputs, strict=True))

    module = Exported()
    saved = tmp_path / "saved_model"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.serve})
    analyze([small_clip.video], tmp_path / "frozen.json", AnalyzeOptions(detectors=("human",), every=5))
    analyze([small_clip.video], tmp_path / "saved.json", AnalyzeOptions(detectors=("human",), every=5, model=saved))
    assert score(tmp_path / "saved.json", tmp_path / "frozen.json", "person").recall == 1.0
    assert read_detections(tmp_path / "saved.json")["detectors"][0]["model"] == str(saved)


def test_auto_tiles_are_decided_again_each_scene(tmp_path: Path) -> None:
    """A grid is kept for SCENE_SECONDS of video, then the people are measured again."""
    video = tmp_path / "long.mp4"
    write_sample(video, SampleSpec(480, 270, seconds=SCENE_SECONDS + 0.5, people=2, seed=5))
    out = tmp_path / "long.json"
    summary = analyze([video], out, AnalyzeOptions(detectors=("human",), every=125))  # t = 0, 5, 10 s
    tiling = read_detections(out)["tiling"]
    assert [(t["index"], t["t"]) for t in tiling] == [(0, 0.0), (250, 10.0)]
    assert all(t["people"] == 2 for t in tiling) and len(summary.scenes) == 2


def test_one_large_person_does_not_switch_tiles_off(tmp_path: Path) -> None:
    """One person near the camera says little about the others: tiles stay no larger than the frame-size grid's."""
    video = tmp_path / "one.mp4"
    write_sample(video, SampleSpec(1280, 720, seconds=0.2, people=1, person_height=(0.6, 0.6), seed=6))
    summary = analyze([video], tmp_path / "one.json", AnalyzeOptions(detectors=("human",), every=5))
    (scene,) = summary.scenes
    assert scene.people == 1 and scene.person_height == pytest.approx(0.6 * 720, rel=0.15)
    assert summary.tiles == "3x2"  # the frame-size grid; the person alone would have asked for none
