"""Background MSE, checks and JUnit; the rembg path through rembg itself."""

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from framegen.output.measure import compare
from framegen.output.report import junit_xml, recheck, run_checks
from framegen.output.segmenters import RembgSegmenter, segmenter_for
from framegen.storyboard import Background


def test_background_mse_counts_only_pixels_background_in_both():
    anchor = np.zeros((4, 4, 3), np.uint8)
    frame = anchor.copy()
    frame[:, :2] = 10  # left half differs by 10 in every channel
    frame[0, 3] = 100  # a person pixel in the frame only
    anchor_person = np.zeros((4, 4), bool)
    frame_person = np.zeros((4, 4), bool)
    anchor_person[3, 3] = True
    frame_person[0, 3] = True
    result = compare(Image.fromarray(anchor), Image.fromarray(frame), anchor_person, frame_person)
    background = 14  # 16 pixels minus one person pixel in each image
    assert result["background_fraction"] == background / 16
    assert result["background_mse"] == pytest.approx(8 * 100 / background)
    assert result["foreground_mse"] == pytest.approx((100**2 + 0) / 2)
    everything_person = compare(Image.fromarray(anchor), Image.fromarray(frame), ~anchor_person | True, frame_person)
    assert everything_person["background_mse"] is None and everything_person["background_fraction"] == 0


def report_of(mses):
    frames = [
        {"name": f"f{i}", "image": f"frames/{i:04d}.png", "background_mse": m, "seconds": 0.5}
        for i, m in enumerate(mses)
    ]
    return {"frames": frames, "checks": []}


def test_checks_and_junit():
    report = report_of([10.0, 80.0, None])
    (check,) = run_checks(report["frames"], 70)
    assert check == {"name": "max_background_mse", "limit": 70, "passed": False, "failing_frames": ["f1", "f2"]}
    assert run_checks(report["frames"], None) == []
    checked, code = recheck(report, 70)
    assert code == 1
    suites = ET.fromstring("".join(junit_xml(checked)))
    (suite,) = suites
    assert suites.tag == "testsuites" and suite.tag == "testsuite"
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert failed == ["f1", "f2"]
    assert recheck(report_of([10.0, 20.0]), 70)[1] == 0


def brightness_segmenter_onnx(path):
    """A tiny ONNX 'person segmenter' with u2net's contract: [1,3,320,320] in,
    channel 0 of the first output, higher = person; here simply the brightness."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input.1"], ["mean"], axes=[1], keepdims=1)],
        "brightness",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 1, 320, 320])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_rembg_session_with_a_local_onnx_model(tmp_path):
    import torch

    brightness_segmenter_onnx(tmp_path / "seg.onnx")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # importing rembg (pymatting) resets this; the segmenter restores it
    image = np.full((64, 64, 3), 20, np.uint8)
    image[16:48, 24:40] = 230  # a bright 'person'
    before = os.environ.get("U2NET_HOME")
    segmenter = segmenter_for(Background(segmenter="rembg", model_path="seg.onnx"), "tiny-random", tmp_path)
    assert isinstance(segmenter, RembgSegmenter) and segmenter.name.endswith("seg.onnx")
    assert os.environ.get("U2NET_HOME") == before  # rembg's home is only borrowed
    assert torch.get_num_threads() == 1
    torch.set_num_threads(threads)
    person = segmenter.person(Image.fromarray(image))
    truth = np.zeros((64, 64), bool)
    truth[16:48, 24:40] = True
    iou = (person & truth).sum() / (person | truth).sum()
    assert person.shape == (64, 64) and iou > 0.9


def test_segmenter_none_and_missing_model(tmp_path):
    from framegen.errors import RenderFailure
    from framegen.output.segmenters import NoSegmenter

    assert not segmenter_for(Background(segmenter="none"), "x", tmp_path).person(Image.new("RGB", (8, 4))).any()
    assert isinstance(segmenter_for(Background(), "tiny-random", tmp_path), NoSegmenter)  # the default there
    with pytest.raises(RenderFailure, match="segmenter model not found"):
        segmenter_for(Background(model_path="missing.onnx"), "x", tmp_path)
