"""Walk a MatConvNet DagNN onto our module names, by the graph alone.

The ResNet is followed from its image input unit by unit (a unit with a shortcut conv opens a stage;
the stride's place, the depth and the width come from the layers found); the refine group from each
input path through its dimension-reducing conv and RCUs, then block by block through fusion, chained
residual pooling (either order, any count, or none) and the output RCUs. Layer names and positions
are never used to decide what a parameter is. Used by refinenet/convert.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from refinenet.backbones import RESNET_BLOCKS
from refinenet.matconvnet import DagNN, Layer, MatConvNetError, filters_to_torch, vector_to_torch


class ConversionError(MatConvNetError):
    pass


# ---------------------------------------------------------------------------------------------
# Walking a graph


class Walk:
    """Follows a DagNN's variables from layer to layer, recording each parameter it maps."""

    def __init__(self, dag: DagNN):
        self.dag = dag
        self.state: dict[str, torch.Tensor] = {}
        self.theirs: dict[str, str] = {}  # our name -> their parameter

    def fail(self, message: str):
        raise ConversionError(f"{self.dag.source}: {message}")

    def consumers(self, var: str, skip=("dagnn.DropOut", "My_copy_layer")) -> list[Layer]:
        return [c for c in self.dag.consumers(var) if c.type not in skip]

    def next(self, var: str, kind: str) -> Layer:
        found = [c for c in self.consumers(var) if c.type == kind]
        if len(found) != 1:
            self.fail(f"expected one {kind} reading {var}, found {[c.name for c in self.consumers(var)]}")
        return found[0]

    def take(self, ours: str, theirs: str, value: torch.Tensor) -> None:
        self.state[ours], self.theirs[ours] = value, theirs

    def conv(self, layer: Layer, ours: str, bias: bool | None = None) -> None:
        """Map a dagnn.Conv's filter (and bias) onto `ours`.weight (and .bias)."""
        if layer.type != "dagnn.Conv":
            self.fail(f"layer {layer.name} is {layer.type}, expected dagnn.Conv")
        weight = filters_to_torch(self.dag.param(layer.params[0]))
        self.take(f"{ours}.weight", layer.params[0], weight)
        # The file's array is read once: from now on the graph reads the same values through a view of ours
        # (H x W x Cin x Cout again), so a converted model costs one copy of the weights, not two.
        self.dag.params[layer.params[0]] = weight.permute(2, 3, 1, 0).numpy()
        has_bias = len(layer.params) > 1
        if bias is not None and has_bias != bias:
            self.fail(f"conv {layer.name} {'has' if has_bias else 'lacks'} a bias where ours "
                      f"{'has none' if has_bias else 'has one'}")
        if has_bias:
            self.take(f"{ours}.bias", layer.params[1], vector_to_torch(self.dag.param(layer.params[1])))

    def batchnorm(self, layer: Layer, ours: str) -> None:
        if layer.type != "dagnn.BatchNorm" or len(layer.params) != 3:
            self.fail(f"layer {layer.name} is {layer.type}, expected dagnn.BatchNorm with mult, bias, moments")
        mult, bias, moments = layer.params
        stored = np.asarray(self.dag.param(moments), dtype=np.float32).reshape(-1, 2, order="F")
        self.take(f"{ours}.weight", mult, vector_to_torch(self.dag.param(mult)))
        self.take(f"{ours}.bias", bias, vector_to_torch(self.dag.param(bias)))
        self.take(f"{ours}.running_mean", moments, torch.from_numpy(stored[:, 0].copy()))
        # sigma as stored; our batch norm (eps 0 in the MSRA form) divides by sqrt(sigma^2)
        self.take(f"{ours}.running_var", moments, torch.from_numpy(stored[:, 1].astype(np.float64) ** 2).float())


def stride_of(layer: Layer) -> int:
    return int(np.asarray(layer.block.get("stride", 1)).reshape(-1)[0])


# ---------------------------------------------------------------------------------------------
# The ResNet


@dataclass
class ResNetFound:
    depth: str
    width: int
    stride_in_1x1: bool
    level_vars: dict[int, str]  # ResNet block m (1..4) -> the variable holding its output
    input_var: str


def walk_resnet(walk: Walk, prefix: str = "") -> ResNetFound:
    """Map conv1 / bn1 / layer1..4 of an MSRA ResNet DagNN; `prefix` is our backbone's name prefix."""
    dag = walk.dag
    inputs = dag.input_vars()
    starts = [v for v in inputs if any(c.type == "dagnn.Conv" for c in dag.consumers(v))]
    if len(starts) != 1:
        walk.fail(f"expected one image input feeding a conv, found inputs {inputs}")
    stem = walk.next(starts[0], "dagnn.Conv")
    walk.conv(stem, f"{prefix}conv1")
    width = int(walk.state[f"{prefix}conv1.weight"].shape[0])
    bn = walk.next(stem.outputs[0], "dagnn.BatchNorm")
    walk.batchnorm(bn, f"{prefix}bn1")
    relu = walk.next(bn.outputs[0], "dagnn.ReLU")
    pool = walk.next(relu.outputs[0], "dagnn.Pooling")
    var, stage, counts, stride_in_1x1, levels = pool.outputs[0], 0, [], None, {}
    while True:
        convs = [c for c in walk.consumers(var) if c.type == "dagnn.Conv"]
        sums = [c for c in walk.consumers(var) if c.type == "dagnn.Sum"]
        if len(convs) == 2:  # a unit with a shortcut conv opens a stage
            if stage:
                levels[stage] = var
            stage += 1
            counts.append(0)
        elif not (len(convs) == 1 and len(sums) == 1):
            break
        unit = f"{prefix}layer{stage}.{counts[-1]}"
        shortcut = None
        if len(convs) == 2:
            after = {c.name: walk.consumers(walk.next(c.outputs[0], "dagnn.BatchNorm").outputs[0]) for c in convs}
            shortcut = next((c for c in convs if [x.type for x in after[c.name]] == ["dagnn.Sum"]), None)
            if shortcut is None:
                walk.fail(f"cannot tell the shortcut conv among {[c.name for c in convs]} reading {var}")
            walk.conv(shortcut, f"{unit}.downsample.0", bias=False)
            walk.batchnorm(walk.next(shortcut.outputs[0], "dagnn.BatchNorm"), f"{unit}.downsample.1")
        x = var
        branch = [c for c in convs if c is not shortcut][0]
        convs_of_unit = []
        for k in (1, 2, 3):
            layer = branch if k == 1 else walk.next(x, "dagnn.Conv")
            walk.conv(layer, f"{unit}.conv{k}", bias=False)
            bn = walk.next(layer.outputs[0], "dagnn.BatchNorm")
            walk.batchnorm(bn, f"{unit}.bn{k}")
            convs_of_unit.append(layer)
            x = bn.outputs[0] if k == 3 else walk.next(bn.outputs[0], "dagnn.ReLU").outputs[0]
        total = walk.next(x, "dagnn.Sum")
        other = var if shortcut is None else walk.next(shortcut.outputs[0], "dagnn.BatchNorm").outputs[0]
        if set(total.inputs) != {x, other}:
            walk.fail(f"sum {total.name} does not add the two branches of the unit reading {var}")
        if shortcut is not None and stage > 1:
            in_1x1 = stride_of(convs_of_unit[0]) == 2
            if stride_in_1x1 is not None and in_1x1 != stride_in_1x1:
                walk.fail("stages place their stride on different convs")
            stride_in_1x1 = in_1x1
        var = walk.next(total.outputs[0], "dagnn.ReLU").outputs[0]
        counts[-1] += 1
    levels[stage] = var
    depth = next((name for name, blocks in RESNET_BLOCKS.items() if tuple(counts) == blocks), None)
    if depth is None:
        walk.fail(f"ResNet with {counts} units per stage is not ResNet-50/101/152")
    return ResNetFound(depth, width, bool(stride_in_1x1), levels, starts[0])


# ---------------------------------------------------------------------------------------------
# The refine group


@dataclass
class RefineFound:
    features: int
    top_features: int
    pooling_blocks: int
    pool_order: str
    input_levels: dict[str, int]  # the refine group's input variable -> ResNet block m
    adapt_rcus: list[int] = field(default_factory=list)
    output_rcus: list[int] = field(default_factory=list)


def rcu(walk: Walk, var: str, ours: str) -> str | None:
    """Map the residual conv unit starting at `var` onto `ours` (conv1 with bias, conv2 without); its
    output variable, or None when `var` does not start an RCU."""
    kinds = sorted(c.type for c in walk.consumers(var))
    if kinds != ["dagnn.ReLU", "dagnn.Sum"]:
        return None
    first = walk.next(walk.next(var, "dagnn.ReLU").outputs[0], "dagnn.Conv")
    second = walk.next(walk.next(first.outputs[0], "dagnn.ReLU").outputs[0], "dagnn.Conv")
    total = walk.next(var, "dagnn.Sum")
    if set(total.inputs) != {var, second.outputs[0]}:
        return None
    walk.conv(first, f"{ours}.conv1", bias=True)
    walk.conv(second, f"{ours}.conv2", bias=False)
    return total.outputs[0]


def rcus(walk: Walk, var: str, ours: str) -> tuple[str, int]:
    count = 0
    while (out := rcu(walk, var, f"{ours}.{count}")) is not None:
        var, count = out, count + 1
    return var, count


def chained_pooling(walk: Walk, var: str, ours: str) -> tuple[str, int, str | None]:
    """Map a chained residual pooling block (gen_network_pool_block.m) reading `var`: (output, blocks, order)."""
    readers = walk.consumers(var)
    if [c.type for c in readers] != ["dagnn.ReLU"]:
        return var, 0, None  # use_chained_pool = false: no block at all
    top = readers[0].outputs[0]
    joint = walk.next(top, "My_sum_layer")
    count, order = 0, None
    while True:
        nxt = [c for c in walk.consumers(top) if c.type in ("dagnn.Pooling", "dagnn.Conv")]
        if not nxt:
            break
        first = nxt[0]
        step = "pool_conv" if first.type == "dagnn.Pooling" else "conv_pool"
        if order not in (None, step):
            walk.fail(f"chained pooling after {var} mixes pool-then-conv and conv-then-pool")
        order = step
        second = walk.next(first.outputs[0], "dagnn.Conv" if step == "pool_conv" else "dagnn.Pooling")
        walk.conv(first if step == "conv_pool" else second, f"{ours}.convs.{count}", bias=False)
        top, count = second.outputs[0], count + 1
        if top not in joint.inputs:
            walk.fail(f"pooling output {top} is not summed by {joint.name}")
    if len(joint.inputs) != count + 1:
        walk.fail(f"{joint.name} sums {len(joint.inputs)} inputs; the chain has {count} blocks")
    return joint.outputs[0], count, order


def walk_refine(walk: Walk, level_of_input: dict[str, int]) -> RefineFound:
    """Map the refine group: per input path a dimred conv and its RCUs, then one RefineNet block per
    path, coarsest first, each fusing the previous block's output (4-cascaded, one feature net)."""
    order = sorted(level_of_input, key=lambda v: -level_of_input[v])  # ResNet block 4 first: RefineNet-4
    adapted, adapt_counts, widths = {}, [], {}
    for i, var in enumerate(order):
        dimred = walk.next(var, "dagnn.Conv")
        walk.conv(dimred, f"dimred.{i}", bias=False)
        widths[level_of_input[var]] = int(walk.state[f"dimred.{i}.weight"].shape[0])
        adapted[var], n = rcus(walk, dimred.outputs[0], f"blocks.{i}.adapt.0" if i == 0 else f"blocks.{i}.adapt.1")
        adapt_counts.append(n)
    previous, pool_counts, orders, output_counts = None, [], set(), []
    for i, var in enumerate(order):
        if previous is None:
            fused = adapted[var]
        else:
            convs = [walk.next(previous, "dagnn.Conv"), walk.next(adapted[var], "dagnn.Conv")]
            for j, layer in enumerate(convs):
                walk.conv(layer, f"blocks.{i}.fusion.convs.{j}", bias=False)
            joint = walk.next(convs[0].outputs[0], "My_sum_layer")
            if set(joint.inputs) != {c.outputs[0] for c in convs}:
                walk.fail(f"fusion {joint.name} does not sum the paths of block {i + 1}")
            fused = joint.outputs[0]
        pooled, count, pool_order = chained_pooling(walk, fused, f"blocks.{i}.pool")
        pool_counts.append(count)
        orders |= {pool_order} - {None}
        previous, n = rcus(walk, pooled, f"blocks.{i}.output")
        output_counts.append(n)
    if len(set(pool_counts)) != 1 or len(orders) > 1:
        walk.fail(f"blocks differ in chained pooling: {pool_counts} blocks, orders {sorted(orders)}")
    if walk.dag.output_vars() != [previous]:
        walk.fail(f"the refine group ends at {walk.dag.output_vars()}, the blocks at {previous}")
    others = [widths[m] for m in widths if m != 4]
    return RefineFound(others[0] if others else widths[4], widths[4], pool_counts[0],
                       orders.pop() if orders else "pool_conv", dict(level_of_input), adapt_counts, output_counts)


# ---------------------------------------------------------------------------------------------
# The checks every conversion passes

SELF_CHECK_TOLERANCE = 1e-3  # max |ours - theirs| / max |theirs| on the score map; float32 rounding is ~1e-6
SELF_CHECK_SIZE = (160, 192)  # the random input (H, W): every ResNet level at least 5 x 6 pixels


def check_complete(ours: dict, state: dict, walks: list[Walk], source: str) -> None:
    """Every parameter of ours set, every parameter of theirs used for one of ours, shapes equal; else an
    error naming both sides, and nothing is loaded. `ours`: our state dict (shapes only are read)."""
    counters = {k for k in ours if k.endswith("num_batches_tracked")}
    theirs_of = {name: f"{w.dag.source.rsplit('group ', 1)[-1]}/{w.theirs[name]}" for w in walks for name in w.theirs}
    unset = sorted(set(ours) - set(state) - counters)
    unused = sorted({f"{w.dag.source.rsplit('group ', 1)[-1]}/{p}" for w in walks
                     for p in set(w.dag.params) - set(w.theirs.values())}
                    | {theirs_of.get(k, k) for k in set(state) - set(ours)})
    if unset or unused:
        raise ConversionError(f"{source}: ours left unset: {', '.join(unset[:4]) or 'none'}"
                              f"{' ...' if len(unset) > 4 else ''}; theirs unused: {', '.join(unused[:4]) or 'none'}"
                              f"{' ...' if len(unused) > 4 else ''}")
    for name, value in state.items():
        if tuple(ours[name].shape) != tuple(value.shape):
            raise ConversionError(f"{source}: {theirs_of.get(name, name)} has shape {tuple(value.shape)}, ours "
                                  f"{name} {tuple(ours[name].shape)}")
    for key in counters:
        state.setdefault(key, torch.zeros((), dtype=torch.long))


def check_agreement(ours: torch.Tensor, theirs: torch.Tensor, source: str) -> dict:
    """The self-check: our output and the file's own graph (run_dagnn) on the same random input agree to
    SELF_CHECK_TOLERANCE of the reference's range; else an error with the difference."""
    if ours.shape != theirs.shape:
        raise ConversionError(f"{source}: self-check failed: our output {tuple(ours.shape)}, the file's graph "
                              f"{tuple(theirs.shape)}")
    diff = float((ours - theirs).abs().max())
    scale = float(theirs.abs().max())
    result = {"max_abs_diff": diff, "max_abs_reference": scale, "relative": diff / max(scale, 1e-12),
              "tolerance": SELF_CHECK_TOLERANCE, "input_shape": list(theirs.shape[:1]) + [3, *SELF_CHECK_SIZE]}
    if not result["relative"] <= SELF_CHECK_TOLERANCE:
        raise ConversionError(f"{source}: self-check failed: converted model and the file's own graph differ by "
                              f"{diff:.3g} (relative {result['relative']:.3g} > {SELF_CHECK_TOLERANCE})")
    return result
