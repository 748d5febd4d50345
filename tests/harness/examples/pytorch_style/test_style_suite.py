"""A small export suite in PyTorch's in-tree conventions (our own code, for the compat-mode tests).

Conventions imitated: a module-level ``from torch.export import export``; a qualified
``torch.export.export`` call as the escape hatch for a test that must not be wrapped;
a helper that branches on the variant suffix of ``self._testMethodName``; expected
failures set as function attributes by decorators.
"""

import unittest

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.export import export
from torch.utils import _pytree as pytree


def expected_failure_serdes(fn):
    fn._expected_failure_serdes = True
    return fn


def expected_failure_serdes_non_strict(fn):
    fn._expected_failure_serdes_non_strict = True
    return fn


def expected_failure_cpp_serdes(fn):
    fn._expected_failure_cpp_serdes = True
    return fn


def expected_failure_retrace(fn):
    fn._expected_failure_retrace = True
    return fn


def is_serdes_test(test_name):
    return test_name.endswith(("_serdes_strict", "_serdes_nonstrict", "_cpp_serdes"))


def is_retrace_test(test_name):
    return test_name.endswith(("_retraceability_strict", "_retraceability_nonstrict"))


class Unnamed:
    def __init__(self, a, b):
        self.a, self.b = a, b


pytree.register_pytree_node(
    Unnamed,
    lambda n: ([n.a, n.b], None),
    lambda children, _: Unnamed(*children),
    flatten_with_keys_fn=lambda n: ([(pytree.GetAttrKey("a"), n.a), (pytree.GetAttrKey("b"), n.b)], None),
)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.lin(x).relu()


class TakesUnnamed(torch.nn.Module):
    def forward(self, node):
        return node.a * node.b


class Varargs(torch.nn.Module):
    def forward(self, *xs):
        return xs[0] + xs[1]


class TestStyle(unittest.TestCase):
    def setUp(self):
        self.name_in_setup = self._testMethodName

    def tearDown(self):
        if self._testMethodName != self.name_in_setup:
            raise AssertionError(f"tearDown saw {self._testMethodName}, setUp saw {self.name_in_setup}")

    def test_basic(self):
        module, x = Linear(), torch.randn(4, 3)
        ep = export(module, (x,))
        torch.testing.assert_close(ep.module()(x), module(x))

    def test_escape_hatch_under_fake_mode(self):
        # The qualified name must stay the real export: the unqualified one would try to
        # deserialize under a new FakeTensorMode.
        with FakeTensorMode(allow_non_fake_inputs=True):
            ep = torch.export.export(Linear(), (torch.randn(4, 3),))
        self.assertIsInstance(ep.state_dict["lin.weight"], FakeTensor)

    def test_branches_on_variant_name(self):
        module = Linear()
        ep = export(module, (torch.randn(4, 3),))
        storage = ep.state_dict["lin.weight"].untyped_storage()
        shares = storage.data_ptr() == module.lin.weight.untyped_storage().data_ptr()
        # Serialization round trips copy the weights; every other variant keeps the module's.
        self.assertEqual(shares, not is_serdes_test(self._testMethodName))

    def test_setup_saw_the_same_name(self):
        self.assertEqual(self.name_in_setup, self._testMethodName)

    @expected_failure_serdes
    @expected_failure_serdes_non_strict
    @expected_failure_cpp_serdes
    def test_unnamed_pytree_node(self):
        ep = export(TakesUnnamed(), (Unnamed(torch.ones(2), torch.ones(2)),))
        torch.testing.assert_close(ep.module()(Unnamed(torch.ones(2), torch.ones(2))), torch.ones(2))

    @expected_failure_retrace
    def test_stale_retrace_mark(self):
        export(Linear(), (torch.randn(4, 3),))

    @unittest.skip("skipped by unittest itself")
    def test_skipped(self):
        raise AssertionError("must not run")

    @unittest.expectedFailure
    def test_unittest_expected_failure(self):
        self.assertEqual(1, 2)

    def test_runs_in_a_generated_variant_class(self):
        # PyTorch's variant files run every test in a subclass; some tests rely on it.
        if self.__class__ == TestStyle:
            raise AssertionError("expected to run in a generated subclass of TestStyle")
        self.assertIsInstance(self, TestStyle)

    def test_varargs_dynamic_shapes_keep_torchs_error_type(self):
        # ep.module() has a flat signature, so re-exporting it with dynamic_shapes for *xs is a
        # structure mismatch: torch's UserError, which the test expects in the retrace variants.
        b = torch.export.Dim("b")
        args, shapes = (torch.randn(3, 2), torch.randn(3, 2)), {"xs": ({0: b}, {0: b})}
        if is_retrace_test(self._testMethodName):
            with self.assertRaisesRegex(torch._dynamo.exc.UserError, "mismatch between the structure"):
                export(Varargs(), args, dynamic_shapes=shapes)
        else:
            ep = export(Varargs(), args, dynamic_shapes=shapes)
            torch.testing.assert_close(ep.module()(*args), args[0] + args[1])

