"""The spiking IR as the SNN package's integer network (for the PASCAL simulation of a build)."""

from __future__ import annotations

import numpy as np

from .transforms import layer_nodes


def ir_to_integer_network(model, name: str = "ir"):
    """The IR as an :class:`IntegerNetwork` (the input of the PASCAL simulation)."""
    from qonnx.custom_op.registry import getCustomOp

    from ..snn.convert import IntegerNetwork, IntLayer

    layers = []
    input_bits = 8
    classes = 0
    for index, node in enumerate(layer_nodes(model)):
        inst = getCustomOp(node)
        common = dict(index=index, t_in=inst.get_nodeattr("t_in"),
                      levels=inst.get_nodeattr("t_out"),
                      in_shape=tuple(inst.get_nodeattr("in_shape")),
                      out_shape=tuple(inst.get_nodeattr("out_shape")))
        if node.op_type in ("SpikingMaxPool", "SpikingSumPool"):
            kind = "maxpool" if node.op_type == "SpikingMaxPool" else "avgpool"
            layers.append(IntLayer(kind=kind, kernel=inst.get_nodeattr("kernel"),
                                   stride=inst.get_nodeattr("stride"), **common))
            continue
        weight = np.rint(model.get_initializer(node.input[1])).astype(np.int64)
        conv = node.op_type.endswith("Conv")
        if node.op_type.startswith("Pixel"):
            input_bits = int(inst.get_nodeattr("in_max")).bit_length()
        extra = dict(kernel=inst.get_nodeattr("kernel"), stride=inst.get_nodeattr("stride"),
                     padding=inst.get_nodeattr("pad")) if conv else {}
        bound = max(abs(inst.get_nodeattr("acc_min")), abs(inst.get_nodeattr("acc_max")))
        third = np.rint(model.get_initializer(node.input[2])).astype(np.int64)
        if node.op_type == "SpikingClassifier":
            classes = weight.shape[0]
            layers.append(IntLayer(kind="linear", weight=weight, bias=third.reshape(-1),
                                   first=False, acc_bound=bound,
                                   out_scale=inst.get_nodeattr("out_scale"), **common))
        else:
            layers.append(IntLayer(kind="conv" if conv else "linear", weight=weight,
                                   thresholds=third, first=node.op_type.startswith("Pixel"),
                                   acc_bound=bound, **common, **extra))
    return IntegerNetwork(name=name, layers=layers, input_bits=input_bits, classes=classes)
