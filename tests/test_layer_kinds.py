"""A new layer kind is one class and one emitter per backend (docs/design.md, section 4.1).

The toy kind below, a stream copy, is defined in this file and nowhere else: registered for the
test's duration, it goes through the design's FIFOs and stream checks, the cycle model's datapath
and schedule (both backends' schedules), the resource estimates, the folding search and both
code generators, inserted after the digits network's pool. Nothing outside this file knows it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from nets import final_ir
from pascal_fpga.hw import schedule
from pascal_fpga.hw.backends import hls, rtl
from pascal_fpga.hw.design import Design, design_from_ir
from pascal_fpga.hw.layers import LAYER_CLASSES, HWLayer
from pascal_fpga.hw.resources import CONTROL_FF, CONTROL_LUT
from pascal_fpga.hw.schedule import LOOP_OVERHEAD
from pascal_fpga.perf.cyclesim import cycle_model
from pascal_fpga.perf.estimates import design_resources
from pascal_fpga.perf.folding import search_folding
from pascal_fpga.perf.values import run_values


class ToyCopy(HWLayer):
    """A copy of its input stream, one read-write slot a word."""

    ops = ("ToyCopy",)
    passes_group = True

    @property
    def in_group(self):
        return self.pe

    @property
    def out_frames(self):
        return self.t_in

    @property
    def fb_out(self):
        return self.fb_in

    @property
    def words(self):
        return self.in_h * self.in_w * (self.in_channels // self.pe)

    def fold_limits(self):
        return self.in_channels, 1

    def values(self, packed, streams, n):
        frames = streams[self.inputs[0]]
        return frames, self.levels_of(frames, n), None

    def programs(self, activity, n, mode=None):
        return [schedule.from_runs(self.name, np.array([schedule.READ_WRITE]),
                                   np.full((n, 1), self.words))]

    def stage_cycles(self, mode, activity=None, worst=False):
        return {self.name: float(self.words + LOOP_OVERHEAD)}

    def count_parts(self, tally, mode, fifo_bits, fifo_depth):
        tally.fifo("input FIFO", fifo_bits, fifo_depth)
        tally.add("control", lut=CONTROL_LUT // 2, ff=CONTROL_FF // 2)


class ToyHLS(hls.HLSEmitter):
    def config(self, layer):
        return {"WORDS": layer.words, "BITS": layer.in_word_bits}

    def stages(self, layer):
        return [hls.StageSpec(layer.name, f"toy::copy<{layer.name}_cfg>", [],
                              f"ap_uint<{layer.out_word_bits}>", counters="fork_stage")]


class ToyRTL(rtl.RTLEmitter):
    def stages(self, layer, files):
        return [rtl.RTLStage(layer.name, "toy_copy", {"BITS": layer.in_word_bits},
                             layer.in_word_bits, layer.out_word_bits, latency=1)]


@pytest.fixture
def toy_kind(monkeypatch):
    """The toy kind registered with the layer classes and both backends, for one test."""
    monkeypatch.setitem(LAYER_CLASSES, "ToyCopy", ToyCopy)
    monkeypatch.setitem(hls.EMITTERS.by_class, ToyCopy, ToyHLS())
    monkeypatch.setitem(rtl.EMITTERS.by_class, ToyCopy, ToyRTL())


def _with_toy(design: Design) -> Design:
    """The design with a toy copy after its pool (the next layer reads the copy)."""
    index = next(j for j, layer in enumerate(design.layers) if layer.op_type.endswith("Pool"))
    pool, after = design.layers[index], design.layers[index + 1]
    node = SimpleNamespace(name="toy0", op_type="ToyCopy", input=[pool.outputs[0]],
                           output=["toy0_out"])
    attrs = {"in_shape": pool.out_shape, "out_shape": pool.out_shape, "t_in": after.t_in,
             "t_out": after.t_in, "in_max": after.in_max, "pe": pool.pe, "simd": 1,
             "fifo_depth": 2}
    toy = LAYER_CLASSES["ToyCopy"](node, None, attrs)
    moved = after.folded()
    moved.inputs = ["toy0_out"]
    layers = design.layers[:index + 1] + [toy, moved] + design.layers[index + 2:]
    toy_design = Design(layers, design.channels, design.height, design.width, design.bits,
                        design.output_depth, design.input_tensor)
    toy_design.check_streams()
    return toy_design


def test_a_toy_kind_needs_a_class_and_an_emitter_per_backend(toy_kind, digits_build, tmp_path):
    design = design_from_ir(ModelWrapper(str(final_ir(digits_build))))
    toy = _with_toy(design)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 2 ** design.bits, size=(6, design.channels, design.height,
                                                     design.width)).astype(np.int32)

    # the datapath: the copy changes nothing, exactly
    acc, classes, levels, lanes = run_values(design, images)
    toy_acc, toy_classes, toy_levels, toy_lanes = run_values(toy, images)
    assert np.array_equal(acc, toy_acc) and np.array_equal(classes, toy_classes)
    pool = next(layer.name for layer in design.layers if layer.op_type.endswith("Pool"))
    assert np.array_equal(toy_levels["toy0"], levels[pool])
    assert set(toy_lanes) == set(lanes)

    # the design: one stage and one FIFO more, its input FIFO as wide as the pool's words
    assert "toy0" in toy.stage_names()
    assert len(toy.stage_names()) == len(design.stage_names()) + 1
    assert len(toy.fifos()) == len(design.fifos()) + 1
    fifo = next(f for f in toy.fifos() if f.layer == "toy0")
    assert fifo.bits == toy.layers[[l.name for l in toy.layers].index("toy0")].in_word_bits

    # both schedules run without a deadlock; the RTL's takes the emitter's latency
    for backend in ("hls", "rtl"):
        report = cycle_model(toy, images, 100.0, backend=backend)
        assert np.array_equal(report.classes, classes)
        assert not report.timing.deadlock
    assert len(toy.programs({}, 2, mode="dense")) == len(toy.stage_names())

    # the estimates and the folding search know it; it shares the pool's stream class
    rows = {row["layer"]: row for row in design_resources(toy)["layers"]}
    assert rows["toy0"]["LUT"] > 0 and rows["toy0"]["mode"] == "zero_skip"
    folding, search_rows = search_folding(toy, toy_lanes, target_fps=1000.0)
    assert folding["toy0"]["pe"] == folding[pool]["pe"]
    assert "toy0" in {row["layer"] for row in search_rows}

    # both backends write it
    context = hls.design_context(toy, "toy", "xc7z020clg400-1", 100.0)
    stage = next(s for s in context["stages"] if s["name"] == "toy0")
    assert stage["call"] == "toy::copy<toy0_cfg>"
    hls.render_project(context, tmp_path / "hls")
    assert "toy::copy<toy0_cfg>" in (tmp_path / "hls" / "firmware" / "pascal_top.cpp").read_text()
    rtl_context, _ = rtl.rtl_context(toy, "toy", 100.0)
    stage = next(s for s in rtl_context["stages"] if s["name"] == "toy0")
    assert stage["module"] == "toy_copy" and stage["latency"] == 1
