"""Fixture writers for the MatConvNet files of issue 19, in exactly the real container formats.

Two formats, both derived from the code that wrote the real files (read for facts, not copied):

* ``imagenet-resnet-{50,101,152}-dag.mat``: MSRA's Caffe ResNets imported by MatConvNet's
  ``utils/import-caffe.py`` + ``utils/layers.py`` and re-saved by ``utils/tidy_ref_models.m``
  (``dagnn.DagNN.loadobj`` -> ``saveobj`` -> ``save(file, '-struct', 'net')``): a MATLAB v7 file with
  top-level ``vars``, ``params``, ``layers``, ``meta``. Caffe's in-place layers were split by renaming
  their output to ``<var>x`` (``conv1`` -> ``conv1x`` after bn_conv1, the merged Scale layer took
  ``conv1xx``, ``conv1xxx`` after conv1_relu); pool1's pad is ``[0 1 0 1]`` (Caffe ceil-mode
  correction in ``CaffePooling.reshape``); batch norm moments are ``[mean, sqrt(var + eps)]``.
* ``refinenet_res*_*.mat``: the authors' ``cnn_save_model.m``: ``save(file, 'net_config', '-v7.3')``
  where ``net_config`` is a ``ref_obj`` handle (MCOS) whose ``ref.group_infos`` holds the groups of
  ``gen_network_main.m``; DagNN groups carry ``dag_net`` = ``DagNN.saveobj()`` from the authors'
  MatConvNet copy (``libs/matconvnet``, cloned 26 Dec 2016, with their BatchNorm).

``DagNN.saveobj`` writes params as {name, value, learningRate, weightDecay} only (no trainMethod, so
``fix_batch_norm_resnet``'s 'fixed' does not reach the file) and vars as {name, precious}; each block
is ``dagnn.Layer.save()``: the non-Transient properties, so ``dagnn.Sum`` (numInputs is Transient),
``dagnn.SoftMax`` and ``My_copy_layer`` save no fields. ``Filter.set.pad`` stores pads as 1x4.

Approximations: a block with no saved fields (MATLAB's 1x1 ``struct()``) is written from ``{}``:
scipy writes a 1x1 field-less struct, mat-io (v7.3) a 1x0 one. MATLAB function handles are
mat-io ``MatlabFunction`` structs {function_handle: {function, type, file}, matlabroot, separator,
sentinel}, not checked against a MATLAB-written file. Fields the authors' training code may add to
net_info or its layers at run time are not reproduced; ``meta.inputs`` (added to import-caffe.py on
2016-09-30) may be absent from the real ImageNet files. Values are random (seeded numpy Generator):
He-normal filters, batch-norm moments scaled to each input's expected RMS (see ``Dag``), and damped
residual-branch convs in the refine net, so activations stay O(1)-O(10) at any depth and width.
"""
import os

import matio
import numpy as np
import scipy.io
from matio.utils.matclass import MatlabFunction, MatlabOpaque

EMPTY = np.zeros((0, 0))  # MATLAB []
UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# Authors' dagnn.BatchNorm (main/my_matconvnet_resnet/+dagnn/BatchNorm.m) adds four properties;
# cnn_global_init_fn.m sets the moment types to train_opts' 'global' before training.
AUTHORS_BN_EXTRA = dict(noise_param_idx=EMPTY, noise_cache_size=EMPTY,
                        bnorm_moment_type_trn='global', bnorm_moment_type_tst='global')


# --------------------------------------------------------------------------- MATLAB values
def struct(**fields):
    """A 1x1 MATLAB struct (structured array with object fields), fields in the given order."""
    a = np.empty((1, 1), dtype=[(k, object) for k in fields])
    for k, v in fields.items():
        a[0, 0][k] = v
    return a


def struct_array(records):
    """A 1xN MATLAB struct array from dicts sharing the same keys."""
    a = np.empty((1, len(records)), dtype=[(k, object) for k in records[0]])
    for i, r in enumerate(records):
        for k, v in r.items():
            a[0, i][k] = v
    return a


def cell(items, column=False, empty_shape=(0, 0)):
    """A MATLAB cell: row 1xN (or column Nx1); ``{}`` is 0x0 unless ``empty_shape`` says otherwise."""
    items = list(items)
    shape = ((len(items), 1) if column else (1, len(items))) if items else empty_shape
    c = np.empty(shape, dtype=object)
    for i, v in enumerate(items):
        c.flat[i] = v
    return c


def row(*xs):
    """A 1xN double row vector."""
    return np.array([xs], dtype=np.float64)


def function_handle(name):
    """``@name`` as mat-io writes a MATLAB function handle (v7.3 only)."""
    return MatlabFunction(struct(function_handle=struct(function=name, type='simple', file=''),
                                 matlabroot='/usr/local/MATLAB/R2015b', separator='/', sentinel='@'))


def _block_struct(block):
    return struct(**block) if block else {}


# --------------------------------------------------------------------------- DagNN builder
class Dag:
    """Accumulates DagNN layers and params in addLayer order; ``saved()`` is DagNN.saveobj's struct.

    ``power`` tracks each variable's expected mean square for a unit-variance input, so batch-norm
    moments can stand in for running statistics and activations stay O(1) at any depth.
    """

    def __init__(self, rng, empty_params=(1, 0), bn_extra=None):
        self.rng, self.layers, self.params, self.power = rng, [], {}, {}
        self.empty_params, self.bn_extra = empty_params, bn_extra or {}

    def add(self, name, type_, block, inputs, outputs, params=(), power=None):
        """Add a layer; by default its output power is the sum of its inputs' (Sum, pooling, copy)."""
        self.layers.append(dict(name=name, type=type_, inputs=list(inputs), outputs=list(outputs),
                                params=list(params), block=block, empty=self.empty_params))
        self.power[outputs[0]] = sum(self.power.get(v, 1.0) for v in inputs) if power is None else power
        return outputs[0]

    def param(self, name, value, lr=1.0):
        self.params[name] = dict(value=value, learningRate=float(lr), weightDecay=1.0)

    def conv(self, name, x, out, k, cin, cout, stride=1, pad=None, bias=False, bias_row=False, gain=1.0):
        """dagnn.Conv; He-normal filters (H x W x Cin x Cout single) times ``gain``."""
        pad = (k - 1) // 2 if pad is None else pad
        std = gain * np.sqrt(2.0 / (k * k * cin))
        self.param(name + '_filter', (self.rng.standard_normal((k, k, cin, cout), dtype=np.float32)
                                      * np.float32(std)))
        names = [name + '_filter']
        if bias:  # Caffe blobs become Cx1 columns; the authors' zeros(1, C) is a 1xC row
            b = (0.1 * self.rng.standard_normal(cout)).astype(np.float32)
            self.param(name + '_bias', b.reshape((1, -1) if bias_row else (-1, 1)))
            names.append(name + '_bias')
        block = dict(size=row(k, k, cin, cout), hasBias=np.bool_(bias), opts=cell(['cuDNN']),
                     pad=row(pad, pad, pad, pad), stride=row(stride, stride), dilate=row(1, 1))
        power = 2.0 * gain**2 * self.power.get(x, 1.0) + (0.01 if bias else 0.0)
        return self.add(name, 'dagnn.Conv', block, [x], [out], names, power=power)

    def bn(self, name, x, out, c):
        """dagnn.BatchNorm: mult, bias (Cx1) and moments [mean, sigma] (Cx2), all single.
        mult ~ U(0.5, 1.5), bias ~ N(0, 0.1); mean ~ N(0, 0.1) and sigma ~ U(0.5, 1.5), both in units
        of the input's expected RMS (sigma > 0), as the stored moments of a trained net would be."""
        r, rms = self.rng, np.sqrt(self.power.get(x, 1.0))
        mult, bias = r.uniform(0.5, 1.5, (c, 1)), 0.1 * r.standard_normal((c, 1))
        mean, sigma = 0.1 * r.standard_normal(c), r.uniform(0.5, 1.5, c)
        self.param(name + '_mult', mult.astype(np.float32))
        self.param(name + '_bias', bias.astype(np.float32))
        moments = np.stack([rms * mean, rms * sigma], axis=1).astype(np.float32)
        self.param(name + '_moments', moments, lr=0.1)  # dagnn.BatchNorm.attach's learning rate
        block = dict(numChannels=EMPTY, epsilon=1e-5, opts=cell(['NoCuDNN']), **self.bn_extra)
        power = float(np.mean((mult[:, 0] / sigma) ** 2 + bias[:, 0] ** 2))
        return self.add(name, 'dagnn.BatchNorm', block, [x], [out],
                        [name + '_mult', name + '_bias', name + '_moments'], power=power)

    def relu(self, name, x, out, power=None):
        """dagnn.ReLU; halves the power of a zero-mean input unless ``power`` says otherwise."""
        block = dict(useShortCircuit=np.bool_(True), leak=0.0, opts=cell([]))
        power = 0.5 * self.power.get(x, 1.0) if power is None else power
        return self.add(name, 'dagnn.ReLU', block, [x], [out], power=power)

    def pool(self, name, x, out, method, size, stride, pad):
        block = dict(method=method, poolSize=row(size, size), opts=cell(['cuDNN']),
                     pad=row(*pad), stride=row(stride, stride), dilate=row(1, 1))
        gain = 4.0 if method == 'max' and size > 1 and stride > 1 else 1.0  # max of 3x3 ReLU outputs
        return self.add(name, 'dagnn.Pooling', block, [x], [out], power=gain * self.power.get(x, 1.0))

    def saved(self, meta):
        """The DagNN.saveobj() struct: vars/params as rebuild() keeps them, in first-use order."""
        var_names = list(dict.fromkeys(v for ly in self.layers for v in ly['inputs'] + ly['outputs']))
        used = list(dict.fromkeys(p for ly in self.layers for p in ly['params']))
        layers = [dict(name=ly['name'], type=ly['type'], inputs=cell(ly['inputs']),
                       outputs=cell(ly['outputs']), params=cell(ly['params'], empty_shape=ly['empty']),
                       block=_block_struct(ly['block'])) for ly in self.layers]
        return dict(vars=struct_array([dict(name=v, precious=np.bool_(False)) for v in var_names]),
                    params=struct_array([dict(name=p, **self.params[p]) for p in used]),
                    layers=struct_array(layers), meta=meta)


# --------------------------------------------------------------------------- ImageNet ResNet
def unit_names(depth):
    """Caffe unit names per stage: 'a','b','c',... (ResNet-50 and stages 2, 5); 'a','b1','b2',...
    for stages 3 and 4 of ResNet-101/152 (MSRA prototxt: res4b1..res4b22, res3b1..res3b7)."""
    names = []
    for stage, n in zip((2, 3, 4, 5), UNITS[depth]):
        if depth == 50 or stage in (2, 5):
            names.append([f'{stage}{chr(97 + i)}' for i in range(n)])
        else:
            names.append([f'{stage}a'] + [f'{stage}b{i}' for i in range(1, n)])
    return names


def _bottleneck(dag, u, x, cin, inner, stride):
    """One MSRA unit: stride on branch2a (1x1) and branch1; Caffe's in-place vars split as x/xxx."""
    if cin != 4 * inner or stride != 1:
        dag.conv(f'res{u}_branch1', x, f'res{u}_branch1', 1, cin, 4 * inner, stride=stride)
        short = dag.bn(f'bn{u}_branch1', f'res{u}_branch1', f'res{u}_branch1x', 4 * inner)
    else:
        short = x
    h, c = x, cin
    for part, k, cout, s in (('2a', 1, inner, stride), ('2b', 3, inner, 1), ('2c', 1, 4 * inner, 1)):
        v = f'res{u}_branch{part}'
        dag.conv(v, h, v, k, c, cout, stride=s)
        h = dag.bn(f'bn{u}_branch{part}', v, v + 'x', cout)
        if part != '2c':
            h = dag.relu(f'{v}_relu', h, v + 'xxx')
        c = cout
    dag.add(f'res{u}', 'dagnn.Sum', {}, [short, h], [f'res{u}'])
    # an identity shortcut is a non-negative stream that the ReLU keeps; the branch is zero-mean
    kept = dag.power[short] * (1.0 if short == x else 0.5) + 0.5 * dag.power[h]
    return dag.relu(f'res{u}_relu', f'res{u}', f'res{u}x', power=kept)


def _imagenet_meta(num_classes):
    """meta as import-caffe.py wrote it (--preproc=vgg-caffe, ResNet_mean.binaryproto, synsets)."""
    ramp = np.linspace(-2.0, 2.0, 224)
    avg = np.array([122.68, 116.67, 104.01])[None, None, :] + ramp[:, None, None] + ramp[None, :, None]
    normalization = struct(imageSize=row(224, 224, 3, 1), averageImage=avg, interpolation='bilinear',
                           keepAspect=np.bool_(True), border=row(32, 32), cropSize=row(0.875, 0.875))
    wnids = [f'n{10000000 + i:08d}' for i in range(num_classes)]
    classes = struct(name=cell(wnids), description=cell(f'class {i}' for i in range(num_classes)))
    return struct(inputs=struct(name='data', size=row(224, 224, 3, 1)),
                  normalization=normalization, classes=classes)


def _build_resnet(depth, width, seed, num_classes=1000, bn_extra=None):
    rng = np.random.default_rng(seed)
    dag = Dag(rng, bn_extra=bn_extra)
    dag.conv('conv1', 'data', 'conv1', 7, 3, width, stride=2, pad=3, bias=True)
    dag.bn('bn_conv1', 'conv1', 'conv1x', width)
    dag.relu('conv1_relu', 'conv1x', 'conv1xxx')
    x = dag.pool('pool1', 'conv1xxx', 'pool1', 'max', 3, 2, (0, 1, 0, 1))  # layers.py pad_corrected
    cin = width
    for m, units in enumerate(unit_names(depth)):
        inner = width * 2 ** m
        for i, u in enumerate(units):
            x = _bottleneck(dag, u, x, cin, inner, 2 if (i == 0 and m > 0) else 1)
            cin = 4 * inner
    dag.pool('pool5', x, 'pool5', 'avg', 7, 1, (0, 0, 0, 0))
    dag.conv('fc1000', 'pool5', 'fc1000', 1, cin, num_classes, pad=0, bias=True)
    dag.add('prob', 'dagnn.SoftMax', {}, ['fc1000'], ['prob'])
    return dag, rng


def imagenet_resnet_dagnn(depth=50, width=64, seed=0, num_classes=1000):
    """The struct of ``imagenet-resnet-<depth>-dag.mat``: dict with vars, params, layers, meta.

    ``width`` scales every channel count (64 is the real net: stem 64, stage m inner 64*2^(m-1),
    outputs 4x that). Layers in prototxt order, Scale layers merged into BatchNorm, pool5/fc1000/prob
    kept. BatchNorm blocks carry numChannels = [] as the import left it (only epsilon was written).
    """
    dag, rng = _build_resnet(depth, width, seed, num_classes)
    return dag.saved(_imagenet_meta(num_classes))


def write_imagenet_resnet(path, depth=50, width=64, seed=0, num_classes=1000):
    """Write the ImageNet ResNet file (MATLAB v7: compressed v5 container, as MATLAB's save did)."""
    net = imagenet_resnet_dagnn(depth, width, seed, num_classes)
    scipy.io.savemat(path, net, do_compression=True, oned_as='column')
    return path


# --------------------------------------------------------------------------- RefineNet (authors)
def _dimred(dag, x, cin, cout, name=None, gain=1.0):
    """My_net_util.add_dim_reduce_layer(_named): 3x3 conv, no bias, output '<name>_varout'."""
    name = name or x + '_dimred'
    return dag.conv(name, x, name + '_varout', 3, cin, cout, gain=gain)


def _my_sum(dag, inputs, name):
    """add_joint_layer_dagnn with use_concat false: My_sum_layer (numInputs is Transient)."""
    block = dict(use_gradient_scale_factor=np.bool_(True))
    return dag.add(name, 'My_sum_layer', block, inputs, [name + '_varout'])


def _rcu_chain(dag, x, c, n, prefix):
    """My_net_util.add_res_conv_block: n units of ReLU, conv+bias, ReLU, dimred conv, dagnn.Sum."""
    for k in range(1, n + 1):
        p = f'{prefix}_b{k}'
        h = dag.relu(p + '_prev_relu', x, p + '_prev_relu_varout')
        h = dag.conv(p + '_conv', h, p + '_conv_outvar', 3, c, c, bias=True, bias_row=True)
        h = dag.relu(p + '_conv_relu', h, p + '_conv_relu_varout')
        h = _dimred(dag, h, c, c, gain=0.5)  # damped residual branch: sums stay O(1) (no BN here)
        x = dag.add(p + '_joint', 'dagnn.Sum', {}, [x, h], [p + '_joint_varout'])
    return x


def _pool_block(dag, x, c, prefix, n, order):
    """gen_network_pool_block.m: 'pool_conv' = do_gen_block (original, Pooling then dimred conv),
    'conv_pool' = do_gen_block_convbeforepool (improved, conv '<var>_pb<p>' then Pooling)."""
    if n == 0:  # refine_config.use_chained_pool = false
        return x
    x = dag.relu(prefix + '_poolprev_relu', x, prefix + '_poolprev_relu_varout')
    outs, h = [x], x
    for p in range(1, n + 1):
        pool_name = f'{prefix}_pool{p}'
        if order == 'conv_pool':
            h = _dimred(dag, h, c, c, name=f'{h}_pb{p}', gain=0.5)
        h = dag.pool(pool_name, h, pool_name + '_outvar', 'max', 5, 1, (2, 2, 2, 2))
        if order == 'pool_conv':
            h = _dimred(dag, h, c, c, gain=0.5)
        outs.append(h)
    return _my_sum(dag, outs, prefix + '_pool_joint')


def _refine_dag(rng, in_names, in_dims, adapt_dims, pooling_blocks, pool_order):
    """gen_network_refine_group.m: adapt blocks for every path, then one RefineNet per group."""
    dag = Dag(rng, empty_params=(0, 0), bn_extra=AUTHORS_BN_EXTRA)
    paths = []
    for p, (v, cin, c) in enumerate(zip(in_names, in_dims, adapt_dims), 1):
        paths.append((_rcu_chain(dag, _dimred(dag, v, cin, c), c, 2, f'adapt_input_path{p}'), c))
    prev = None
    for g, path in enumerate(paths, 1):
        members = ([prev] if prev else []) + [path]
        c = min(d for _, d in members)  # filter_num_after_joint
        x = path[0]
        if len(members) > 1:
            x = _my_sum(dag, [_dimred(dag, v, d, c, gain=0.5) for v, d in members], f'mflow_joint_g{g}')
        x = _pool_block(dag, x, c, f'mflow_conv_g{g}', pooling_blocks, pool_order)
        prev = (_rcu_chain(dag, x, c, 3, f'mflow_conv_g{g}'), c)
    return dag, prev


def _featnet_dag(depth, width, seed):
    """gen_network_featnet_resnet.m on the ImageNet DagNN: drop prob/fc1000/pool5, DropOut on the
    stage-4/5 outputs (1024/2048 channels at full width), My_copy_layer on stages 2/3, then
    fix_padding_resnet (every pad -> round((k-1)/2), so pool1 becomes [1 1 1 1])."""
    dag, rng = _build_resnet(depth, width, seed, bn_extra=AUTHORS_BN_EXTRA)
    meta = _imagenet_meta(1000)
    dag.layers = [ly for ly in dag.layers if ly['name'] not in ('prob', 'fc1000', 'pool5')]
    dag.empty_params = (0, 0)
    outs, dims = [], []
    for m, units in reversed(list(enumerate(unit_names(depth)))):
        v = f'res{units[-1]}x'
        if m >= 2:
            outs.append(dag.add(v + '_dropout', 'dagnn.DropOut', dict(rate=0.5, frozen=np.bool_(False)),
                                [v], [v + '_dropout_varout']))
        else:
            outs.append(dag.add(v + '_copy', 'My_copy_layer', {}, [v], [v + '_copy_varout']))
        dims.append(4 * width * 2 ** m)
    for ly in dag.layers:
        if ly['type'] in ('dagnn.Conv', 'dagnn.Pooling'):
            k = int(ly['block'].get('poolSize', ly['block'].get('size'))[0, 0])
            ly['block']['pad'] = row(*[(k - 1) // 2] * 4)
    return dag, meta, outs, dims, rng


def _net_info(name, layers, **extra):
    """My_net_util.gen_net_info_basic as a ref_obj, cleaned as cnn_save_model.m does."""
    ref = dict(bp_start_layer=1.0, do_bp=True, bp_start_epoch=1.0, net_stay_on_gpu=True,
               data_stay_on_gpu=True, lr_multiplier=1.0, current_lr=0.0, tmp_data=EMPTY,
               layers=cell(layers), name=name, net_on_gpu=False)
    ref.update(extra)
    return MatlabOpaque({'ref': struct(**ref)}, 'ref_obj')


def _group_info(idx, name, **extra):
    """My_net_util.gen_group_info_basic; later assignments update fields or append new ones."""
    info = dict(child_group_idxes=EMPTY, net_info=EMPTY, child_relation='chain', group_idx=float(idx),
                prediction_layer_idxes=EMPTY, forward_evaluate_fn=EMPTY, forward_begin_fn=EMPTY,
                forward_finish_fn=EMPTY, skip_forward=False, skip_backward=False, name=name,
                use_dagnn=False)
    info.update(extra)
    return struct(**info)


def _wrapper_layer(custom_type, fn, **fields):
    return struct(type='my_custom', custom_type=custom_type, forward_fn=function_handle(fn + '_forward'),
                  backward_fn=function_handle(fn + '_backward'), layer_update_fn=EMPTY, **fields)


def _loss_layers(rng, cin, num_classes):
    """gen_network_loss_group.m with lossgroup_conv_num = 0: SimpleNN-style dropout, 3x3 conv
    (pad from gen_padding_keep_size, momenta cleared by cnn_save_model), dense_softmaxloss."""
    filters = rng.standard_normal((3, 3, cin, num_classes), dtype=np.float32) * np.float32(
        np.sqrt(2.0 / (9 * cin)))
    biases = (0.1 * rng.standard_normal((1, num_classes))).astype(np.float32)
    stageout = struct(stage_idx=1.0, output_dim=float(cin), stageout_num=1.0, gen_prediction_info=True)
    return [struct(type='dropout', rate=0.5),
            struct(type='conv', filters=filters, biases=biases, stride=1.0, pad=row(1, 1, 1, 1),
                   filtersMomentum=EMPTY, biasesMomentum=EMPTY),
            _wrapper_layer('dense_softmaxloss', 'cnn_layer_dense_softmaxloss', stageout_info=stageout)]


def refinenet_net_config(depth=101, width=64, features=256, top_features=512, num_classes=22,
                         pooling_blocks=4, pool_order='pool_conv', input_scale=1.2, seed=0,
                         drop_group=None):
    """The ``net_config`` ref_obj that cnn_save_model.m saves, with the groups of gen_network_main.m:
    1 root, 2 multi_featnet, 3 featnet_1, 4 refinenets, 5 loss_group (group_infos is a 5x1 cell).

    ``width`` scales the ResNet; the refine widths are ``top_features`` on the block-4 path and
    ``features`` elsewhere (real: 512/256); the classifier reads ``features`` channels.
    ``pool_order``: 'pool_conv' (the paper's chained pooling) or 'conv_pool' (the improved pooling
    of the five README datasets); ``pooling_blocks=0`` is use_chained_pool = false.
    ``drop_group`` names a group left out of group_infos (indices elsewhere unchanged).
    """
    if pool_order not in ('pool_conv', 'conv_pool'):
        raise ValueError(f'pool_order must be pool_conv or conv_pool, not {pool_order!r}')
    feat, meta, feat_outs, dims, rng = _featnet_dag(depth, width, seed)
    scale = f'{input_scale:.1f}'.replace('.', 'd')
    in_names = [f'p_ims{scale}_outl{p}' for p in range(1, 5)]
    adapt = [top_features, features, features, features]
    refine, (out_var, out_dim) = _refine_dag(rng, in_names, dims, adapt, pooling_blocks, pool_order)
    feat_layers = [_wrapper_layer('dagnn_wrapper', 'cnn_layer_dagnn_wrapper', input_var_names=cell(['data']),
                                  output_var_names=cell(feat_outs, column=True),
                                  use_single_output=False)]
    refine_layers = [
        _wrapper_layer('input_concat', 'cnn_layer_path_merge', layer_result_name='input_path_merge'),
        _wrapper_layer('dagnn_wrapper', 'cnn_layer_dagnn_wrapper', input_var_names=cell(in_names, column=True),
                       output_var_names=cell([out_var], column=True), use_single_output=True)]
    groups = {
        'root': _group_info(1, 'root', child_group_idxes=np.array([[2.0], [4.0], [5.0]])),
        'multi_featnet': _group_info(2, 'multi_featnet', child_group_idxes=np.array([[3.0]]),
                                     child_relation='parallel'),
        'featnet_1': _group_info(3, 'featnet_1', use_dagnn=True, dag_net=struct(**feat.saved(meta)),
                                 net_info=_net_info('featnet_1', feat_layers, lr_multiplier=0.1)),
        'refinenets': _group_info(4, 'refinenets', use_dagnn=True, dag_net=struct(**refine.saved(EMPTY)),
                                  net_info=_net_info('refinenets', refine_layers)),
        'loss_group': _group_info(5, 'loss_group', prediction_layer_idxes=3.0,
                                  forward_evaluate_fn=function_handle('cnn_loss_group_evaluate'),
                                  net_info=_net_info('final_loss', _loss_layers(rng, out_dim, num_classes),
                                                     prediction_layer_idxes=3.0)),
    }
    if drop_group is not None and drop_group not in groups:
        raise ValueError(f'drop_group must be one of {sorted(groups)}, not {drop_group!r}')
    kept = [g for name, g in groups.items() if name != drop_group]
    ref = struct(group_counter=5.0, group_infos=cell(kept, column=True), root_group_idx=1.0,
                 valid_group_flags=np.ones((5, 1), dtype=bool), root_group_info=groups['root'],
                 predict_group_idx=5.0, net_input_img_scales=np.array([[float(input_scale)]]),
                 dag_group_flags=np.array([[False], [False], [True], [True], [False]]),
                 cache_filename=EMPTY)
    return MatlabOpaque({'ref': ref}, 'ref_obj')


def write_refinenet_mat(path, **kwargs):
    """Write ``refinenet_net_config(**kwargs)`` as cnn_save_model.m does: v7.3 with MCOS ``ref_obj``."""
    matio.save_to_mat(os.fspath(path), {'net_config': refinenet_net_config(**kwargs)}, version='v7.3')
    return path


# --------------------------------------------------------------------------- bad inputs
def write_truncated_copy(src, dst, fraction=0.5):
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (a download cut short)."""
    with open(src, 'rb') as f_in, open(dst, 'wb') as f_out:
        f_out.write(f_in.read(int(os.path.getsize(src) * fraction)))
    return dst


def write_not_a_network(path):
    """A valid v7.3 file holding no network: the ``exp_info`` that cnn_save_model.m saves beside it."""
    exp_info = struct(epoch=8.0, learning_rate=5e-5, train_loss=np.linspace(2.0, 0.5, 8)[None, :])
    matio.save_to_mat(os.fspath(path), {'exp_info': exp_info}, version='v7.3')
    return path
