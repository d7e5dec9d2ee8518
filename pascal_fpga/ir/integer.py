"""The spiking IR as the SNN package's integer network (for the PASCAL simulation of a build)."""

from __future__ import annotations

import numpy as np
from qonnx.custom_op.registry import getCustomOp

from ..snn.convert import IntegerNetwork, IntLayer, ShiftBlock
from .transforms import layer_nodes


def ir_to_integer_network(model, name: str = "ir"):
    """The IR as an :class:`IntegerNetwork` (the input of the PASCAL simulation). A residual
    block (fork, conv1, conv2 and a projection with accumulator outputs, add) becomes a
    :class:`ShiftBlock` in integer form (its float views, unused by integer mode, are zero)."""
    layers = []
    input_bits = 8
    classes = 0
    nodes = layer_nodes(model)
    producer = {out: node for node in nodes for out in node.output}
    members: dict[str, str] = {}        # a block's conv1, conv2, projection -> its add
    for node in nodes:
        if node.op_type == "SpikingAdd":
            conv2 = producer[node.input[0]]
            short = producer.get(node.input[1])
            members[conv2.name] = members[producer[conv2.input[0]].name] = node.name
            if short is not None and short.op_type == "SpikingConvAcc":
                members[short.name] = node.name
    converted: dict[str, IntLayer] = {}
    for index, node in enumerate(nodes):
        inst = getCustomOp(node)
        common = dict(index=index, t_in=inst.get_nodeattr("t_in"),
                      levels=inst.get_nodeattr("t_out"),
                      in_shape=tuple(inst.get_nodeattr("in_shape")),
                      out_shape=tuple(inst.get_nodeattr("out_shape")))
        if node.op_type == "SpikingFork":
            continue
        if node.op_type in ("SpikingMaxPool", "SpikingSumPool"):
            kind = "maxpool" if node.op_type == "SpikingMaxPool" else "avgpool"
            layers.append(IntLayer(kind=kind, kernel=inst.get_nodeattr("kernel"),
                                   stride=inst.get_nodeattr("stride"), **common))
            continue
        if node.op_type == "SpikingAdd":
            layers.append(_block(model, node, inst, producer, converted, common))
            continue
        weight = np.rint(model.get_initializer(node.input[1])).astype(np.int64)
        conv = node.op_type.endswith("Conv") or node.op_type == "SpikingConvAcc"
        if node.op_type.startswith("Pixel"):
            input_bits = int(inst.get_nodeattr("in_max")).bit_length()
        extra = dict(kernel=inst.get_nodeattr("kernel"), stride=inst.get_nodeattr("stride"),
                     padding=inst.get_nodeattr("pad")) if conv else {}
        bound = max(abs(inst.get_nodeattr("acc_min")), abs(inst.get_nodeattr("acc_max")))
        if node.op_type == "SpikingConvAcc":
            layer = IntLayer(kind="conv", weight=weight, acc_bound=bound, **common, **extra)
        else:
            third = np.rint(model.get_initializer(node.input[2])).astype(np.int64)
            if node.op_type == "SpikingClassifier":
                classes = weight.shape[0]
                layer = IntLayer(kind="linear", weight=weight, bias=third.reshape(-1),
                                 first=False, acc_bound=bound,
                                 out_scale=inst.get_nodeattr("out_scale"), **common)
            else:
                layer = IntLayer(kind="conv" if conv else "linear", weight=weight,
                                 thresholds=third, first=node.op_type.startswith("Pixel"),
                                 acc_bound=bound, **common, **extra)
        if node.name in members:
            converted[node.name] = layer
        else:
            layers.append(layer)
    return IntegerNetwork(name=name, layers=layers, input_bits=input_bits, classes=classes)


def _block(model, add, inst, producer, converted, common):
    conv2_node = producer[add.input[0]]
    conv1 = converted[producer[conv2_node.input[0]].name]
    short = producer.get(add.input[1])
    shortcut = converted[short.name] if short is not None and \
        short.op_type == "SpikingConvAcc" else None
    thresholds = np.rint(model.get_initializer(add.input[2])).astype(np.int64)
    shift_main = np.rint(model.get_initializer(add.input[3])).astype(np.int64).reshape(-1)
    shift_short = np.rint(model.get_initializer(add.input[4])).astype(np.int64).reshape(-1)
    channels = len(thresholds)
    zeros = np.zeros(channels, dtype=np.float64)
    t_in = conv1.t_in
    return ShiftBlock(
        index=common["index"], conv1=conv1, conv2=converted[conv2_node.name], shortcut=shortcut,
        shift_main=shift_main, shift_short=shift_short, thresholds=thresholds,
        exponent=shift_short - shift_main, short_gain=zeros, in_scale=0.0, t_in=t_in,
        levels=common["levels"], step=0.0, scale=zeros, offset=zeros.copy(),
        in_shape=conv1.in_shape, out_shape=common["out_shape"],
        acc_bound=max(abs(inst.get_nodeattr("n_min")), abs(inst.get_nodeattr("n_max"))))
