"""Module, Parameter and the containers: registration, traversal, state, modes, errors, repr."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import ember
from ember import nn
from tests.conftest import to_np


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(ember.ones(3))
        self.fc = nn.Linear(3, 2)
        self.register_buffer("count", ember.zeros((), dtype=ember.int64))
        self.act = nn.Tanh()
        self.head = nn.Sequential(nn.Linear(2, 2), nn.ReLU())

    def forward(self, x):
        self.count = self.count.data + 1
        return self.head(self.act(self.fc(x * self.scale)))


# -- registration and traversal ----------------------------------------------------------------

def test_registration_order_and_paths():
    m = Block()
    assert [n for n, _ in m.named_parameters()] == [
        "scale", "fc.weight", "fc.bias", "head.0.weight", "head.0.bias"]
    assert [n for n, _ in m.named_buffers()] == ["count"]
    assert [n for n, _ in m.named_modules()] == ["", "fc", "act", "head", "head.0", "head.1"]
    assert [type(c).__name__ for c in m.children()] == ["Linear", "Tanh", "Sequential"]
    assert [n for n, _ in m.named_children()] == ["fc", "act", "head"]
    assert len(list(m.parameters())) == 5 and len(list(m.buffers())) == 1
    assert [n for n, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert m.get_submodule("head.1").__class__ is nn.ReLU
    with pytest.raises(AttributeError, match="has no submodule 'x'; its children: \\['0', '1'\\]"):
        m.get_submodule("head.x")


def test_shared_parameters_and_modules_are_listed_once():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "1"]


def test_assignment_rules():
    m = Block()
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'scale' of Block: "
                                        "assign an nn.Parameter or None"):
        m.scale = ember.ones(3)
    with pytest.raises(TypeError, match="cannot assign a int to submodule 'fc' of Block"):
        m.fc = 3
    m.fc = None  # allowed, as in PyTorch
    assert m.fc is None and "fc.weight" not in dict(m.named_parameters())
    m.scale = nn.Parameter(ember.zeros(3))
    assert float(m.scale.sum()) == 0.0
    del m.act
    assert "act" not in dict(m.named_children())
    m.plain = 5  # a plain attribute
    assert m.plain == 5 and "plain" not in dict(m.named_parameters())
    m.plain = nn.Parameter(ember.ones(1))  # becomes a parameter
    assert "plain" in dict(m.named_parameters()) and "plain" not in m.__dict__


def test_unknown_attribute_names_class_and_attribute():
    lin = nn.Linear(2, 2)
    with pytest.raises(AttributeError) as e:
        _ = lin.wieght
    assert str(e.value) == "Linear has no attribute 'wieght'; did you mean 'weight'?"
    with pytest.raises(AttributeError, match="^Sequential has no attribute 'zzz'$"):
        _ = nn.Sequential().zzz
    assert not hasattr(lin, "missing")


def test_forgetting_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(ember.ones(1))

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) first in Bad.__init__"):
        Bad()


def test_buffer_assignment_rebinds_the_same_tensor():
    bn = nn.BatchNorm1D(2)
    buf = bn.running_mean
    bn.running_mean = ember.ones(2).data
    assert bn.running_mean is buf and buf.tolist() == [1.0, 1.0]
    bn.running_mean = ember.full((2,), 3.0)
    assert bn.running_mean is buf and buf.tolist() == [3.0, 3.0]
    assert not buf.requires_grad


def test_buffer_counter_and_persistence():
    m = Block()
    m(ember.ones(4, 3))
    m(ember.ones(4, 3))
    assert int(m.count) == 2
    m.register_buffer("scratch", ember.zeros(2), persistent=False)
    assert "scratch" in dict(m.named_buffers()) and "scratch" not in m.state_dict()


def test_parameter_basics():
    p = nn.Parameter(ember.tensor([1.0, 2.0]))
    assert p.requires_grad and isinstance(p, ember.Tensor) and p.is_leaf
    assert nn.Parameter(ember.zeros(2), requires_grad=False).requires_grad is False
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    with pytest.raises(TypeError, match="Parameter needs data, or shape= and init="):
        nn.Parameter()
    with pytest.raises(TypeError, match="either data or shape= and init=, not both"):
        nn.Parameter(ember.ones(1), shape=(1,), init="zeros")
    with pytest.raises(ValueError, match="unknown initialiser 'nope'; valid names: zeros, ones"):
        nn.Parameter(shape=(1,), init="nope")


def test_lazy_parameter_metadata_does_not_draw():
    p = nn.Parameter(shape=(3, 2), init="xavier_uniform")
    assert p.shape == (3, 2) and p.ndim == 2 and p.size == 6 and p.dtype == np.float32
    assert not p.is_materialized
    assert repr(p) == "Parameter(<lazy xavier_uniform_ shape=(3, 2) dtype=float32>)"
    assert p.numpy().shape == (3, 2) and p.is_materialized  # touching data draws


# -- state_dict ----------------------------------------------------------------------------------

def test_state_dict_round_trip(backend):
    ember.manual_seed(1)
    a = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1D(4), nn.ReLU(), nn.Linear(4, 2))
    x = ember.randn(5, 3)
    a(x)  # moves the running statistics
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                        "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"]
    ember.manual_seed(2)
    b = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1D(4), nn.ReLU(), nn.Linear(4, 2))
    assert not np.array_equal(to_np(b.state_dict()["0.weight"]), to_np(sd["0.weight"]))
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k in sd:
        np.testing.assert_array_equal(to_np(b.state_dict()[k]), to_np(sd[k]))
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_accepts_numpy_and_tensors(backend):
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.eye(2), "bias": ember.tensor([1.0, 2.0])})
    assert lin.weight.dtype == np.float32 and lin.weight.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert lin.bias.tolist() == [1.0, 2.0]
    assert ember.backend.get().owns(lin.weight.data)


def test_load_state_dict_lists_every_problem_in_one_error():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    sd = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 5)).state_dict()
    del sd["0.bias"]
    sd["extra"] = np.zeros(1)
    before = model.state_dict()
    with pytest.raises(RuntimeError) as e:
        model.load_state_dict(sd)
    assert str(e.value) == (
        "Error(s) in loading state_dict for Sequential:\n"
        "  missing keys: '0.bias'\n"
        "  unexpected keys: 'extra'\n"
        "  shape mismatches: '1.weight': checkpoint (5, 3), model (4, 3); "
        "'1.bias': checkpoint (5,), model (4,)\n"
        "  (pass strict=False to load the matching keys only)"
    )
    assert all(model.state_dict()[k] is before[k] for k in before)  # nothing was loaded
    with pytest.raises(RuntimeError, match="shape mismatches: '1.weight'"):
        model.load_state_dict(sd, strict=False)  # shape mismatches are errors even then
    sd["1.weight"], sd["1.bias"] = np.ones((4, 3)), np.ones(4)
    result = model.load_state_dict(sd, strict=False)
    assert result == (["0.bias"], ["extra"])
    assert model[1].weight.tolist() == np.ones((4, 3)).tolist()


def test_load_into_lazy_parameters_skips_the_draw():
    lin = nn.Linear(2, 2)
    lin.load_state_dict({"weight": np.ones((2, 2)), "bias": np.zeros(2)})
    assert lin.weight.tolist() == [[1.0, 1.0], [1.0, 1.0]]


# -- modes, gradients, dtype -------------------------------------------------------------------

def test_train_eval_recursive():
    m = Block()
    assert m.training and m.head[1].training
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    m.head.train(False)
    assert m.training and not m.head.training and not m.head[0].training


def test_zero_grad_and_freezing(backend):
    m = Block()
    m(ember.ones(2, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(abs(p.grad).sum()) == 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.fc.requires_grad_(False)
    m(ember.ones(2, 3)).sum().backward()
    assert m.fc.weight.grad is None and m.fc.bias.grad is None
    assert m.head[0].weight.grad is not None and m.scale.grad is not None


def test_trainable_flag(backend):
    frozen = nn.Linear(2, 2, trainable=False)
    assert [p.requires_grad for p in frozen.parameters()] == [False, False]
    model = nn.Sequential(frozen, nn.Linear(2, 1))
    model(ember.ones(3, 2)).sum().backward()
    assert frozen.weight.grad is None and model[1].weight.grad is not None
    assert not any(p.requires_grad for p in nn.BatchNorm1D(2, trainable=False).parameters())
    assert not any(p.requires_grad for p in nn.LayerNorm(2, trainable=False).parameters())
    assert not nn.PReLU(trainable=False).weight.requires_grad


def test_to_dtype(backend):
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1D(2)).double()
    assert {str(t.dtype) for t in m.parameters()} == {"float64"}
    assert m[1].running_mean.dtype == np.float64 and m[1].num_batches_tracked.dtype == np.int64
    assert m(ember.ones(3, 2, dtype=ember.float64)).dtype == np.float64
    assert m.float()[0].weight.dtype == np.float32


def test_forward_hooks_and_removal():
    relu = nn.ReLU()
    calls = []
    h1 = relu.register_forward_hook(lambda m, args, out: calls.append(args[0].shape))
    h2 = relu.register_forward_hook(lambda m, args, out: out * 2)  # replaces the output
    assert relu(ember.tensor([1.0])).tolist() == [2.0] and calls == [(1,)]
    h1.remove()
    h2.remove()
    assert relu._forward_hooks is None  # nothing left on the call path
    assert relu(ember.tensor([1.0])).tolist() == [1.0] and calls == [(1,)]


def test_apply_and_not_implemented_forward():
    seen = []
    nn.Sequential(nn.Linear(1, 1), nn.ReLU()).apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Sequential"]
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(1)


def test_pickle_and_deepcopy_keep_values_and_links():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert list(clone.state_dict()) == list(model.state_dict())
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(to_np(clone.state_dict()[k]), to_np(v))
        assert clone[0]._parent() is clone and clone[0].weight._owner() is clone[0]
        assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad


# -- errors naming the layer ---------------------------------------------------------------------

def test_shape_error_names_the_path_and_both_shapes():
    model = nn.Sequential(nn.Linear(8, 63), nn.ReLU(), nn.Linear(64, 10))
    with pytest.raises(ValueError) as e:
        model(ember.zeros(32, 8))
    assert str(e.value) == "model.2 (Linear 64->10): expected input (..., 64), got (32, 63)"
    with pytest.raises(ValueError) as e:
        model[2](ember.zeros(32, 63))  # called alone, the layer is the outermost module
    assert str(e.value) == "model (Linear 64->10): expected input (..., 64), got (32, 63)"


def test_shape_error_path_seen_from_the_outermost_call():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
            self.heads = nn.ModuleDict({"a": nn.Linear(3, 1)})

        def forward(self, x):
            return self.heads["a"](self.body(x))

    with pytest.raises(ValueError, match=r"^model\.heads\.a \(Linear 3->1\): expected input "
                                         r"\(\.\.\., 3\), got \(2, 4\)$"):
        Net()(ember.zeros(2, 4))
    with pytest.raises(ValueError, match=r"^model\.body\.0 \(Linear 4->4\)"):
        Net()(ember.zeros(2, 5))


# -- repr and summary ---------------------------------------------------------------------------

def test_repr_is_a_tree():
    assert repr(Block()) == (
        "Block(\n"
        "  (fc): Linear(in_features=3, out_features=2, bias=True)\n"
        "  (act): Tanh()\n"
        "  (head): Sequential(\n"
        "    (0): Linear(in_features=2, out_features=2, bias=True)\n"
        "    (1): ReLU()\n"
        "  )\n"
        ")"
    )
    assert repr(nn.Linear(2, 1, bias=False)) == "Linear(in_features=2, out_features=1, bias=False)"
    assert repr(nn.BatchNorm2D(3)) == ("BatchNorm2D(3, eps=1e-05, momentum=0.1, affine=True, "
                                       "track_running_stats=True)")


def test_summary_counts_and_leaves_state_alone(capsys):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8, trainable=False), nn.BatchNorm1D(8), nn.ReLU(),
                          nn.Dropout(0.5), nn.Linear(8, 2))
    before = {k: to_np(v).copy() for k, v in model.state_dict().items()}
    model[3].train()
    text = model.summary((4,))
    assert capsys.readouterr().out == text + "\n"
    assert text == (
        "Layer             Output shape   Params   Trainable\n"
        "---------------------------------------------------\n"
        "0 (Linear)        (None, 8)      40       0\n"
        "1 (BatchNorm1D)   (None, 8)      16       16\n"
        "2 (ReLU)          (None, 8)      0        0\n"
        "3 (Dropout)       (None, 8)      0        0\n"
        "4 (Linear)        (None, 2)      18       18\n"
        "---------------------------------------------------\n"
        "Total params: 74\n"
        "Trainable params: 34\n"
        "Non-trainable params: 40"
    )
    after = model.state_dict()
    assert all(np.array_equal(before[k], to_np(after[k])) for k in before)  # no stat, no key moved
    assert all(m.training for m in model.modules())
    assert all(m._forward_hooks is None for m in model.modules())


def test_summary_of_a_custom_model_and_uncalled_layers():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.unused = nn.Linear(3, 1)
            self.w = nn.Parameter(ember.ones(3))

        def forward(self, x):
            return self.fc(x) * self.w

    text = Net().summary((3,), print_fn=None)
    assert text.splitlines()[2:5] == [
        "Net               (None, 3)      3        3",
        "fc (Linear)       (None, 3)      12       12",
        "unused (Linear)   (not called)   4        4",
    ]
    assert text.splitlines()[-3] == "Total params: 19"


# -- containers ----------------------------------------------------------------------------------

def test_sequential_indexing_slicing_append():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    model = nn.Sequential(a, b)
    assert model.append(c) is model and len(model) == 3
    assert model[0] is a and model[-1] is c and list(model) == [a, b, c]
    head = model[:2]
    assert type(head) is nn.Sequential and list(head) == [a, b]
    assert [n for n, _ in head.named_parameters()] == ["0.weight", "0.bias"]
    assert head(ember.ones(4, 2)).shape == (4, 3)
    assert model(ember.ones(4, 2)).shape == (4, 1)
    model[1] = nn.Tanh()
    assert isinstance(model[1], nn.Tanh)
    with pytest.raises(IndexError, match="index 3 is out of range for a Sequential of 3 modules"):
        model[3]
    with pytest.raises(TypeError, match="Sequential takes Modules; argument 1 is a int"):
        nn.Sequential(a, 3)
    named = nn.Sequential({"enc": nn.Linear(2, 2), "act": nn.ReLU()})
    assert [n for n, _ in named.named_modules()] == ["", "enc", "act"]
    assert named.extend([nn.Linear(2, 1)]) is named and len(named) == 3


def test_module_list_and_dict():
    blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
    blocks.append(nn.ReLU())
    blocks.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in blocks] == ["Tanh", "Linear", "Linear", "ReLU"]
    assert [n for n, _ in blocks.named_parameters()][:2] == ["1.weight", "1.bias"]
    assert isinstance(blocks[1:], nn.ModuleList) and len(blocks[1:]) == 3
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        blocks(1)
    heads = nn.ModuleDict({"a": nn.Linear(2, 1)})
    heads["b"] = nn.Linear(2, 3)
    assert list(heads) == ["a", "b"] and "b" in heads and len(heads) == 2
    assert [n for n, _ in heads.named_parameters()] == ["a.weight", "a.bias", "b.weight",
                                                        "b.bias"]
    del heads["a"]
    assert heads.keys() == ["b"] and [k for k, _ in heads.items()] == ["b"]
    with pytest.raises(KeyError, match="ModuleDict has no key 'z'; keys: \\['b'\\]"):
        heads["z"]
