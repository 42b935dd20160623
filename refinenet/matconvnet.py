"""One reader for MatConvNet files, and an interpreter of their DagNN graphs.

Two kinds of file, one representation (`DagNN`: layers with their inputs, outputs and parameter
names, and the parameters by name):

* MatConvNet's ImageNet ResNets, `imagenet-resnet-{50,101,152}-dag.mat`: a DagNN saved as top-level
  variables `layers`, `params`, `meta` (MATLAB v7; written by MatConvNet's `utils/import-caffe.py`).
* The authors' trained RefineNets, `refinenet_res{101,152}_<dataset>.mat`: `cnn_save_model.m` saves
  `net_config` with `-v7.3` (HDF5). `net_config` is a `ref_obj` handle object (MATLAB's MCOS storage)
  whose `ref.group_infos` cell holds the groups `gen_network_main.m` builds; DagNN groups carry
  `dag_net = dag_net.saveobj()` (`params` {name, value, ...}, `layers` {name, type, inputs, outputs,
  params, block}); the loss group keeps its classifier as a SimpleNN layer list in `net_info.ref.layers`
  (`gen_network_loss_group.m`).

mat-io reads both containers (MCOS objects included); only plain structs, cells and arrays are used:
no MATLAB function handle or `ref_obj` method is interpreted.

`run_dagnn` executes a graph layer by layer with MatConvNet's semantics, written from the layer
definitions (dagnn.Conv, BatchNorm with stored moments as `vl_nnbnorm`, ReLU, Pooling, Sum, DropOut at
test time, and the authors' `My_sum_layer.m`, `My_copy_layer.m`, `My_concat_layer.m`). It is the
independent side of the converter's self-check (refinenet/convert.py): it never touches our modules.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class MatConvNetError(ValueError):
    """A file that is not what the reader expects; the message names the file and the layout expected."""


@dataclass(frozen=True)
class Layer:
    name: str
    type: str  # the block's class, e.g. "dagnn.Conv", "My_sum_layer"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...]
    block: dict  # the block's saved properties (size, pad, stride, poolSize, method, hasBias, ...)


@dataclass
class DagNN:
    """A MatConvNet DagNN as saved: layers in stored order and parameter values by name."""

    layers: list[Layer]
    params: dict[str, np.ndarray]
    source: str = ""  # "FILE" or "FILE, group NAME", for messages
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self._consumers: dict[str, list[Layer]] = defaultdict(list)
        self._producer: dict[str, Layer] = {}
        for layer in self.layers:
            for var in layer.inputs:
                self._consumers[var].append(layer)
            for var in layer.outputs:
                self._producer[var] = layer

    def consumers(self, var: str) -> list[Layer]:
        return self._consumers.get(var, [])

    def producer(self, var: str) -> Layer | None:
        return self._producer.get(var)

    def input_vars(self) -> list[str]:
        """Variables no layer produces, in the order layers first read them."""
        seen = []
        for layer in self.layers:
            seen += [v for v in layer.inputs if v not in self._producer and v not in seen]
        return seen

    def output_vars(self) -> list[str]:
        """Variables no layer reads, in the order they are produced."""
        return [v for layer in self.layers for v in layer.outputs if not self._consumers.get(v)]

    def execution_order(self) -> list[Layer]:
        """Layers sorted so that every input is computed first (the stored order, where it already is)."""
        ready, done, order, pending = set(self.input_vars()), set(), [], list(self.layers)
        while pending:
            rest = [layer for layer in pending if not all(v in ready for v in layer.inputs)]
            runnable = [layer for layer in pending if all(v in ready for v in layer.inputs)]
            if not runnable:
                raise MatConvNetError(f"{self.source}: the graph has a cycle or an input no layer computes "
                                      f"(stuck at layer {rest[0].name})")
            for layer in runnable:
                order.append(layer)
                ready.update(layer.outputs)
                done.add(layer.name)
            pending = rest
        return order

    def param(self, name: str) -> np.ndarray:
        if name not in self.params:
            raise MatConvNetError(f"{self.source}: parameter {name} is named by a layer but not stored")
        return self.params[name]


# ---------------------------------------------------------------------------------------------
# Reading


def plain(value):
    """mat-io's values as plain Python: a 1x1 struct -> dict, a struct array -> list of dicts, a cell ->
    list, a char array -> str, an MCOS object -> dict of its properties (with "__class__"); numeric
    arrays stay as they are (indexed as in MATLAB: a H x W x Cin x Cout filter has that shape)."""
    properties = getattr(value, "properties", None)
    if isinstance(properties, dict):  # matio.utils.matclass.MatlabOpaque: an MCOS object
        return {"__class__": getattr(value, "classname", None), **{k: plain(v) for k, v in properties.items()}}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            items = [{name: plain(rec[name]) for name in value.dtype.names} for rec in value.reshape(-1, order="F")]
            return items[0] if value.size == 1 else items
        if value.dtype.kind == "U":
            return "".join(str(v) for v in value.reshape(-1, order="F"))
        if value.dtype == object:
            return [plain(v) for v in value.reshape(-1, order="F")]
    return value


def as_list(value) -> list:
    """A struct array or cell read by `plain`, as a list (a single element comes back bare; [] as empty)."""
    if value is None:
        return []
    if isinstance(value, (dict, str)):
        return [value]
    if isinstance(value, np.ndarray):
        return [] if value.size == 0 else [value]
    return list(value)


def load_mat(path: Path) -> dict:
    """Every variable of a MAT-file (v5/v7 or v7.3), through mat-io; a clear error for anything else."""
    from matio import load_from_mat

    path = Path(path)
    if not path.is_file():
        raise MatConvNetError(f"{path} does not exist")
    try:
        return load_from_mat(str(path))
    except Exception as err:  # truncated HDF5, bad header, ...: all mean "not a readable MAT-file"
        raise MatConvNetError(f"{path} is not a readable MATLAB .mat file ({type(err).__name__}: {err})") from err


def dagnn_from_struct(struct: dict, source: str) -> DagNN:
    """A DagNN from the struct `DagNN.saveobj()` writes (fields layers, params, meta)."""
    if not isinstance(struct, dict) or "layers" not in struct or "params" not in struct:
        raise MatConvNetError(f"{source}: expected a MatConvNet DagNN struct with fields layers and params")
    layers = []
    for raw in as_list(struct["layers"]):
        try:
            layers.append(Layer(
                name=str(raw["name"]), type=str(raw["type"]),
                inputs=tuple(str(v) for v in as_list(raw["inputs"])),
                outputs=tuple(str(v) for v in as_list(raw["outputs"])),
                params=tuple(str(v) for v in as_list(raw["params"])),
                block=raw.get("block") if isinstance(raw.get("block"), dict) else {}))
        except (KeyError, TypeError) as err:
            raise MatConvNetError(f"{source}: a layer lacks the DagNN fields name/type/inputs/outputs/params "
                                  f"({err})") from err
    params = {}
    for raw in as_list(struct["params"]):
        value = raw.get("value")
        params[str(raw["name"])] = np.asarray(value) if value is not None else np.zeros(0, np.float32)
    meta = struct.get("meta") if isinstance(struct.get("meta"), dict) else {}
    return DagNN(layers, params, source, meta)


def read_imagenet_dagnn(path: Path) -> DagNN:
    """MatConvNet's `imagenet-resnet-*-dag.mat`: top-level `layers`, `params` and `meta`."""
    variables = load_mat(path)
    if "layers" not in variables or "params" not in variables:
        raise MatConvNetError(f"{path}: expected a MatConvNet DagNN saved as top-level variables layers, params "
                              f"and meta (imagenet-resnet-*-dag.mat); found {sorted(variables)[:8]}")
    return dagnn_from_struct({k: plain(v) for k, v in variables.items() if k in ("layers", "params", "meta")},
                             str(path))


@dataclass
class TrainedRefineNetFile:
    """What the converter needs from `refinenet_res*_*.mat`: each group's DagNN, the loss group's
    SimpleNN layers (dropout, classifier conv), and the feature nets' input scales."""

    path: Path
    dags: dict[str, DagNN]  # group name -> graph: featnet_1 (featnet_2 for a 2-scale net), refinenets
    loss_layers: list[dict]  # SimpleNN structs of the loss group (gen_network_loss_group.m)
    input_scales: tuple[float, ...]  # net_config.ref.net_input_img_scales (gen_net_opts_model_type1.m)
    group_names: list[str]


REQUIRED_GROUPS = ("featnet_1", "refinenets", "loss_group")


def read_trained_refinenet(path: Path) -> TrainedRefineNetFile:
    variables = load_mat(path)
    layout = ("the v7.3 file cnn_save_model.m writes: variable net_config, a ref_obj whose ref.group_infos holds "
              "the groups featnet_1, refinenets and loss_group")
    if "net_config" not in variables:
        raise MatConvNetError(f"{path}: no variable net_config; expected {layout}")
    config = plain(variables["net_config"])
    ref = config.get("ref") if isinstance(config, dict) else None
    if not isinstance(ref, dict) or "group_infos" not in ref:
        raise MatConvNetError(f"{path}: net_config has no ref.group_infos; expected {layout}")
    groups = {}
    for group in as_list(ref["group_infos"]):
        if isinstance(group, dict) and "name" in group:
            groups[str(group["name"])] = group
    missing = [g for g in REQUIRED_GROUPS if g not in groups]
    if missing:
        raise MatConvNetError(f"{path}: group {', '.join(missing)} missing (found {', '.join(groups) or 'none'}); "
                              f"expected {layout}")
    dags = {}
    for name, group in groups.items():
        if isinstance(group.get("dag_net"), dict):
            dags[name] = dagnn_from_struct(group["dag_net"], f"{path}, group {name}")
    for name in ("featnet_1", "refinenets"):
        if name not in dags:
            raise MatConvNetError(f"{path}: group {name} has no dag_net; expected {layout}")
    net_info = groups["loss_group"].get("net_info")
    info_ref = net_info.get("ref") if isinstance(net_info, dict) else None
    loss_layers = [layer for layer in as_list(info_ref.get("layers")) if isinstance(layer, dict)] \
        if isinstance(info_ref, dict) else []
    if not any(layer.get("type") == "conv" for layer in loss_layers):
        raise MatConvNetError(f"{path}: the loss_group has no classifier conv in net_info.ref.layers "
                              f"(gen_network_loss_group.m); expected {layout}")
    scales = np.asarray(ref.get("net_input_img_scales", [1.0]), dtype=float).reshape(-1)
    return TrainedRefineNetFile(Path(path), dags, loss_layers, tuple(float(s) for s in scales), list(groups))


def fix_padding_resnet(dag: DagNN) -> DagNN:
    """The authors' `My_net_util.fix_padding_resnet`, applied to an ImageNet ResNet before they use it
    (gen_network_featnet_resnet.m): a layer padded unevenly (Caffe's ceil-mode pool1, [0 1 0 1]) gets the
    symmetric pad round((k - 1) / 2)."""
    layers = []
    for layer in dag.layers:
        pad = layer.block.get("pad")
        if pad is not None and len(set(np.asarray(pad, dtype=float).reshape(-1))) > 1:
            size = layer.block.get("poolSize") if "poolSize" in layer.block else np.asarray(layer.block["size"])[:2]
            k = np.asarray(size, dtype=float).reshape(-1)
            layer = Layer(layer.name, layer.type, layer.inputs, layer.outputs, layer.params,
                          {**layer.block, "pad": [round((k[0] - 1) / 2)] * 2 + [round((k[-1] - 1) / 2)] * 2})
        layers.append(layer)
    return DagNN(layers, dag.params, dag.source, dag.meta)


# ---------------------------------------------------------------------------------------------
# Interpreting: MatConvNet's semantics on N x C x H x W tensors


def _pair(value, default: int) -> tuple[int, int]:
    v = np.asarray(value if value is not None else default, dtype=float).reshape(-1)
    return (int(v[0]), int(v[0])) if v.size == 1 else (int(v[0]), int(v[1]))


def _pads(value) -> tuple[int, int, int, int]:
    """MatConvNet's pad: a scalar or [top bottom left right]."""
    v = np.asarray(value if value is not None else 0, dtype=float).reshape(-1)
    return tuple(int(x) for x in (v if v.size == 4 else np.repeat(v[:1], 4)))


def filters_to_torch(value: np.ndarray) -> torch.Tensor:
    """MatConvNet H x W x Cin x Cout -> PyTorch Cout x Cin x H x W (float32, its own memory)."""
    value = np.asarray(value, dtype=np.float32)
    value = value.reshape(value.shape + (1,) * (4 - value.ndim))
    return torch.from_numpy(np.ascontiguousarray(value.transpose(3, 2, 0, 1)))


def vector_to_torch(value: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(value, dtype=np.float32).reshape(-1)))


def conv(x: torch.Tensor, filters, biases, pad, stride, dilate=1) -> torch.Tensor:
    top, bottom, left, right = _pads(pad)
    x = F.pad(x, (left, right, top, bottom))
    bias = None if biases is None or np.asarray(biases).size == 0 else vector_to_torch(biases)
    return F.conv2d(x, filters_to_torch(filters), bias, stride=_pair(stride, 1), dilation=_pair(dilate, 1))


def matlab_imresize(x: torch.Tensor, scale: float | None = None, sizes: tuple[int, int] | None = None) -> torch.Tensor:
    """MATLAB's `imresize` (bicubic, antialiased when shrinking, symmetric borders) through bicubic-pytorch.

    Run on one CPU thread: its `F.unfold` over a batch of one-channel maps took 1.6 s instead of 3 ms with two
    threads on a 2-core machine with any other load (OpenMP waits); on a GPU the setting does not apply."""
    from bicubic_pytorch.core import imresize

    threads = torch.get_num_threads()
    if x.device.type == "cpu" and threads > 1:
        torch.set_num_threads(1)
    try:
        return imresize(x, scale=scale, sizes=None if sizes is None else tuple(sizes), antialiasing=True)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def matlab_imresize_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`my_resize.m`: MATLAB imresize by the larger size ratio (bicubic), then the top-left crop."""
    factor = max(size[0] / x.shape[-2], size[1] / x.shape[-1])
    return matlab_imresize(x, scale=factor)[..., : size[0], : size[1]]


def run_layer(layer: Layer, inputs: list[torch.Tensor], dag: DagNN) -> torch.Tensor:
    kind, block = layer.type, layer.block
    if kind == "dagnn.Conv":
        bias = dag.param(layer.params[1]) if len(layer.params) > 1 and block.get("hasBias", True) else None
        return conv(inputs[0], dag.param(layer.params[0]), bias, block.get("pad", 0), block.get("stride", 1),
                    block.get("dilate", 1))
    if kind == "dagnn.BatchNorm":  # vl_nnbnorm with given moments: g (x - mu) / sigma + b, no epsilon
        mult, bias, moments = (dag.param(p) for p in layer.params)
        moments = torch.from_numpy(np.asarray(moments, dtype=np.float32).reshape(-1, 2, order="F").copy())
        shape = (1, -1, 1, 1)
        return ((inputs[0] - moments[:, 0].reshape(shape)) / moments[:, 1].reshape(shape)
                * vector_to_torch(mult).reshape(shape) + vector_to_torch(bias).reshape(shape))
    if kind == "dagnn.ReLU":
        leak = float(np.asarray(block.get("leak", 0) or 0).reshape(-1)[0]) if np.size(block.get("leak", 0)) else 0.0
        return F.leaky_relu(inputs[0], leak) if leak else F.relu(inputs[0])
    if kind == "dagnn.Pooling":
        top, bottom, left, right = _pads(block.get("pad", 0))
        if str(block.get("method", "max")) != "max":
            raise MatConvNetError(f"{dag.source}: pooling layer {layer.name} is {block.get('method')}; only max "
                                  f"pooling occurs in the networks this reader interprets")
        x = F.pad(inputs[0], (left, right, top, bottom), value=float("-inf"))  # padding never wins a max
        return F.max_pool2d(x, _pair(block.get("poolSize"), 1), stride=_pair(block.get("stride"), 1))
    if kind in ("dagnn.Sum",):
        return sum(inputs[1:], inputs[0])
    if kind in ("dagnn.DropOut", "My_copy_layer"):  # dropout is the identity at test time
        return inputs[0]
    if kind == "My_sum_layer":  # every input brought to the largest size (My_sum_layer.m, do_resize)
        size = (max(x.shape[-2] for x in inputs), max(x.shape[-1] for x in inputs))
        resized = [x if tuple(x.shape[-2:]) == size else matlab_imresize_crop(x, size) for x in inputs]
        return sum(resized[1:], resized[0])
    if kind == "My_concat_layer":
        return torch.cat(inputs, dim=1)
    raise MatConvNetError(f"{dag.source}: layer {layer.name} has type {kind}, which this interpreter does not know")


@torch.inference_mode()
def run_dagnn(dag: DagNN, feeds: dict[str, torch.Tensor], wanted: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Values of `wanted` variables (default: the graph's outputs) given its inputs in `feeds`."""
    wanted = wanted or dag.output_vars()
    missing = [v for v in dag.input_vars() if v not in feeds]
    if missing:
        raise MatConvNetError(f"{dag.source}: no value given for input {missing[0]}")
    needed, stack = set(), list(wanted)
    while stack:  # only the layers the wanted variables depend on
        layer = dag.producer(stack.pop())
        if layer is not None and layer.name not in needed:
            needed.add(layer.name)
            stack += list(layer.inputs)
    order = [layer for layer in dag.execution_order() if layer.name in needed]
    last_use = {}
    for i, layer in enumerate(order):
        for v in layer.inputs:
            last_use[v] = i
    values = dict(feeds)
    for i, layer in enumerate(order):
        values[layer.outputs[0]] = run_layer(layer, [values[v] for v in layer.inputs], dag)
        for v in layer.inputs:  # free what no later layer reads
            if last_use.get(v) == i and v not in wanted:
                values.pop(v, None)
    return {v: values[v] for v in wanted}


@torch.inference_mode()
def run_simplenn(layers: list[dict], x: torch.Tensor, source: str) -> torch.Tensor:
    """The loss group's SimpleNN layers up to its prediction layer: dropout (identity at test) and conv."""
    for layer in layers:
        kind = str(layer.get("type"))
        if kind == "dropout":
            continue
        if kind == "conv":
            x = conv(x, layer["filters"], layer.get("biases"), layer.get("pad", 0), layer.get("stride", 1))
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "my_custom":  # dense_softmaxloss: the prediction layer; scores are its input
            break
        else:
            raise MatConvNetError(f"{source}: loss-group layer of type {kind} is not known")
    return x
