"""The small passes inside ActivationsToThresholds and LowerToSpikingOps, each run on its own on
exported networks: its guarantee holds, and the graph still computes the same integer levels
(and classifier integers) where the pass keeps them."""

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from pascal_fpga.buildfolder import load_qonnx
from pascal_fpga.ir import ops
from pascal_fpga.flows.verify import integer_outputs
from pascal_fpga.ir.execute import run_model
from pascal_fpga.ir.export import level_count, node_attr
from pascal_fpga.ir.transforms import (AbsorbFlatten, ActivationsToThresholds,
                                       BatchNormToAffine, CheckSupported, FoldWeightQuant,
                                       InsertForks, IntegerClassifier, LowerClassifier,
                                       LowerPools, LowerShiftAddBlocks, LowerToSpikingOps,
                                       LowerWeightedLayers, NameLayers, PixelsToIntegers,
                                       ShiftAddBlocks, SumPools, ThresholdLayers, layer_nodes,
                                       level_view, output_scale)
from pascal_fpga.spec import parse_spec

from nets import ODD_SPECS, make_exported, random_images

RESIDUAL = {"name": "res", "input": {"channels": 1, "height": 8, "width": 8, "bits": 4},
            "classes": 3, "weight_bits": 4, "levels": 3,
            "layers": [{"type": "conv", "channels": 4, "kernel": 3, "padding": 1},
                       {"type": "block", "channels": 4},                              # identity
                       {"type": "block", "channels": 6, "stride": 2, "levels": 2},    # projection
                       {"type": "avgpool", "kernel": 2},
                       {"type": "flatten"},
                       {"type": "linear", "features": 3}]}
SPECS = {"pools": ODD_SPECS["pools"], "maxpool_l8": ODD_SPECS["maxpool_l8"],
         "strided": ODD_SPECS["strided"], "res": RESIDUAL}
# the networks with an average pool, and those with a residual block (the passes for them)
AVERAGE_POOLS = sorted(n for n, spec in SPECS.items()
                       if any(layer["type"] == "avgpool" for layer in spec["layers"]))
BLOCKS = sorted(n for n, spec in SPECS.items()
                if any(layer["type"] == "block" for layer in spec["layers"]))


@pytest.fixture(scope="module", params=sorted(SPECS))
def net(request, tmp_path_factory):
    """(the graph after FoldWeightQuant, its QCFS tensors, images, their levels and classifier
    integers in that graph)."""
    spec_dict = SPECS[request.param]
    _, path = make_exported(tmp_path_factory.mktemp(request.param), spec_dict)
    model = load_qonnx(path)
    for step in (CheckSupported(), BatchNormToAffine(), FoldWeightQuant()):
        model = model.transform(step)
    names = [n.output[0] for n in model.graph.node
             if n.op_type == "Quant" and n.input[0] != model.graph.input[0].name]
    images = random_images(parse_spec(spec_dict, "spec"), 24, 3)
    scale = output_scale(model.transform(ActivationsToThresholds()))
    return request.param, model, names, images, _integers(model, images, names, scale), scale


def _integers(model, images, names, scale) -> dict[str, np.ndarray]:
    """Each QCFS tensor as levels and the classifier's integers (as verify reads any step)."""
    values = integer_outputs(model, run_model(model, images), names, scale)
    values["classifier"] = values.pop(model.graph.output[0].name)
    return values


def _same(got: dict, expected: dict, keys=None) -> None:
    for key in keys if keys is not None else expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


def _converted(model, names) -> list[str]:
    return [n for n in names if model.find_producer(n).op_type == "MultiThreshold"]


def _settle(model, kinds):
    """The passes applied in turn until the graph stops changing (each converts what its
    expectations allow, so a pool and the layers around it take turns)."""
    while True:
        before = model.model.SerializeToString()
        for kind in kinds:
            model = model.transform(kind())
        if model.model.SerializeToString() == before:
            return model


def _copy(model):
    return ModelWrapper(model.model.SerializeToString())


# --- ActivationsToThresholds ----------------------------------------------------------------

def test_pixels_to_integers(net):
    _, model, names, images, expected, scale = net
    after = model.transform(PixelsToIntegers())
    source = after.graph.input[0].name
    assert not [n for n in after.graph.node if n.op_type == "Quant" and n.input[0] == source]
    bits = parse_spec(SPECS[net[0]], "spec").input.bits
    assert after.get_tensor_datatype(source).name == f"UINT{bits}"
    assert level_view(after, source).scale == 1.0
    assert level_view(after, source).level_max == 2 ** bits - 1
    _same(_integers(after, images, names, scale), expected)


def test_threshold_layers_give_the_levels(net):
    _, model, names, images, expected, scale = net
    after = model.transform(PixelsToIntegers()).transform(ThresholdLayers())
    done = _converted(after, names)
    assert done, "the first layer at least"
    for name in done:
        mt = after.find_producer(name)
        thresholds = after.get_initializer(mt.input[1])
        quant = model.find_producer(name)
        assert thresholds.shape[1] == level_count(model.get_initializer(quant.input[3]))
        assert np.all(np.diff(thresholds, axis=1) >= 0) and np.all(np.abs(thresholds) < 2 ** 24)
        assert np.array_equal(thresholds, np.rint(thresholds))
        datatype = after.get_tensor_datatype(name)   # UINT<bits> (UINT1 reads BINARY)
        assert datatype.is_integer() and not datatype.signed()
        assert datatype.max() >= thresholds.shape[1]
    # a layer's levels come from integer thresholds on the levels before it
    _same(_integers(after, images, names, scale), expected, done)


@pytest.mark.parametrize("net", AVERAGE_POOLS, indirect=True)
def test_sum_pools_sum_the_levels(net):
    name, model, names, images, expected, scale = net
    after = _settle(model.transform(PixelsToIntegers()), [ThresholdLayers, ShiftAddBlocks])
    pools = [n for n in after.graph.node if n.op_type == "AveragePool"]
    assert pools
    after = after.transform(SumPools())
    assert not [n for n in after.graph.node if n.op_type == "AveragePool"]
    ctx = run_model(after, images)
    for pool in pools:
        conv = after.find_producer(pool.output[0])
        channels = after.get_tensor_shape(conv.input[0])[1]
        assert conv.op_type == "Conv" and node_attr(conv, "group") == channels
        assert np.all(after.get_initializer(conv.input[1]) == 1)
        kernel, stride = node_attr(conv, "kernel_shape")[0], node_attr(conv, "strides")[0]
        levels = ctx[conv.input[0]]
        height = (levels.shape[2] - kernel) // stride + 1
        width = (levels.shape[3] - kernel) // stride + 1
        sums = np.zeros(ctx[pool.output[0]].shape)
        for i in range(kernel):
            for j in range(kernel):
                sums += levels[:, :, i:i + stride * height:stride, j:j + stride * width:stride]
        np.testing.assert_array_equal(ctx[pool.output[0]], sums)
        view, before = level_view(after, pool.output[0]), level_view(after, conv.input[0])
        assert view.level_max == before.level_max * kernel ** 2
        assert view.scale == before.scale / kernel ** 2
    # the next layers take the sums: their thresholds absorb the 1/k^2
    settled = _settle(after, [SumPools, ThresholdLayers, ShiftAddBlocks])
    _same(_integers(settled, images, names, scale), expected, names)


@pytest.mark.parametrize("net", BLOCKS, indirect=True)
def test_shift_add_blocks(net):
    name, model, names, images, expected, scale = net
    after = _settle(model.transform(PixelsToIntegers()),
                    [SumPools, ThresholdLayers, ShiftAddBlocks])
    adds = [n for n in after.graph.node if n.op_type == "Add"
            and not any(after.get_initializer(i) is not None for i in n.input)]
    assert len(adds) == 2
    for add in adds:
        assert [c.op_type for c in after.find_consumers(add.output[0])] == ["MultiThreshold"]
        for tensor in add.input:   # each operand shifted left by a power of two per channel
            mul = after.find_producer(tensor)
            factor = after.get_initializer([i for i in mul.input
                                            if after.get_initializer(i) is not None][0])
            assert mul.op_type == "Mul" and np.all(factor >= 1)
            assert np.array_equal(np.exp2(np.rint(np.log2(factor))), factor)
    _same(_integers(after, images, names, scale), expected, names)


def test_integer_classifier_and_the_whole_step(net):
    name, model, names, images, expected, scale = net
    after = _settle(model.transform(PixelsToIntegers()),
                    [SumPools, ThresholdLayers, ShiftAddBlocks])
    after = after.transform(IntegerClassifier())
    gemm = [n for n in after.graph.node if n.op_type == "Gemm"][-1]
    add = after.find_consumer(gemm.output[0])
    mul = after.find_consumer(add.output[0])
    assert (add.op_type, mul.op_type) == ("Add", "Mul")
    assert mul.output[0] == after.graph.output[0].name
    bias = after.get_initializer(add.input[1])
    assert np.array_equal(bias, np.rint(bias))
    assert output_scale(after) == scale
    _same(_integers(after, images, names, scale), expected)
    # the composite step gives the same graph (its walk keeps qonnx's random tensor names)
    whole = model.transform(ActivationsToThresholds())
    assert [n.op_type for n in whole.graph.node] == [n.op_type for n in after.graph.node]
    for one, two in zip(whole.graph.node, after.graph.node):
        if one.op_type in ("MultiThreshold", "Conv", "Gemm"):
            assert np.array_equal(whole.get_initializer(one.input[1]),
                                  after.get_initializer(two.input[1])), one.name
    assert whole.get_metadata_prop("pascal_fpga.level_views") is None


# --- LowerToSpikingOps ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def thresholded(net):
    name, model, names, images, expected, scale = net
    return name, model.transform(ActivationsToThresholds()), names, images, expected, scale


def test_lower_shift_add_blocks_and_pools_keep_the_levels(thresholded):
    name, model, names, images, expected, scale = thresholded
    after = model.transform(LowerShiftAddBlocks())
    if name == "res":
        kinds = [n.op_type for n in after.graph.node]
        assert kinds.count("SpikingAdd") == 2 and kinds.count("SpikingConvAcc") == 3
        assert "Add" not in kinds[:-2] and "Mul" not in kinds[:-1]
    after = after.transform(LowerPools())
    assert not [n for n in after.graph.node if n.op_type == "MaxPool"
                or (n.op_type == "Conv" and node_attr(n, "group", 1) > 1)]
    for node in after.graph.node:
        if node.op_type in ("SpikingMaxPool", "SpikingSumPool", "SpikingAdd"):
            assert node_attr(node, "t_in") >= 1 and node_attr(node, "in_max") >= 1
    _same(_integers(after, images, names, scale), expected)


def test_lower_weighted_layers_and_classifier(thresholded):
    name, model, names, images, expected, scale = thresholded
    after = model.transform(AbsorbFlatten())
    assert not [n for n in after.graph.node if n.op_type in ("Reshape", "Flatten")]
    after = after.transform(LowerShiftAddBlocks()).transform(LowerPools())
    after = after.transform(LowerWeightedLayers())
    assert not [n for n in after.graph.node if n.op_type == "MultiThreshold"]
    first = after.graph.node[0]
    assert first.op_type in ("PixelConv", "PixelDense")
    after = after.transform(LowerClassifier())
    assert all(n.domain == ops.DOMAIN for n in after.graph.node)
    classifier = after.graph.node[-1]
    assert classifier.op_type == "SpikingClassifier" and classifier.name == "classifier"
    assert node_attr(classifier, "out_scale") == pytest.approx(scale)
    for node in after.graph.node:
        assert node_attr(node, "acc_min", 0) <= node_attr(node, "acc_max", 0)
    _same(_integers(after, images, names, scale), expected)


def test_forks_and_names(thresholded):
    name, model, names, images, expected, scale = thresholded
    after = model
    for kind in (AbsorbFlatten, LowerShiftAddBlocks, LowerPools, LowerWeightedLayers,
                 LowerClassifier, InsertForks):
        after = after.transform(kind())
    forks = [n for n in after.graph.node if n.op_type == "SpikingFork"]
    assert len(forks) == (2 if name == "res" else 0)
    for fork in forks:
        main, short = fork.output
        assert (main, short) == (f"{fork.input[0]}_main", f"{fork.input[0]}_short")
        users = [after.find_consumer(main), after.find_consumer(short)]
        assert users[1].op_type in ("SpikingAdd", "SpikingConvAcc")
        assert users[0].op_type in ("SpikingConv", "PixelConv")
    _same(_integers(after, images, names, scale), expected)
    after = after.transform(NameLayers())
    whole = model.transform(LowerToSpikingOps())
    assert [n.name for n in layer_nodes(after)] == [n.name for n in layer_nodes(whole)]
    assert [n.op_type for n in after.graph.node] == [n.op_type for n in whole.graph.node]
    assert [n.name for n in after.graph.node if n.op_type in ("PixelConv", "SpikingConv",
                                                              "SpikingConvAcc")] == \
        [f"conv{i}" for i in range(sum(n.op_type.endswith(("Conv", "ConvAcc"))
                                       for n in after.graph.node))]
    _same(_integers(whole, images, names, scale), expected)
