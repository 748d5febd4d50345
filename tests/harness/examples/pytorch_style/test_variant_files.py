"""A hand-written per-variant wrapper file in PyTorch's manner (our own code): the baseline compat mode must match.

For every wrapper it makes a subclass of each suite class whose test methods carry the
variant suffix, patch only the suite module's ``export`` name while they run, and turn
the variant's ``_expected_failure_*`` attribute into ``unittest.expectedFailure``.
"""

import functools
import unittest
from unittest import mock

import test_style_suite as suite
import torch

from harness.patching import bind
from harness.wrappers import BUILTIN_WRAPPERS


def _variant_method(fn, wrapper):
    wrapped_export = bind(wrapper, torch.export.export, lambda stage: None)

    @functools.wraps(fn)
    def run(self):
        with mock.patch.object(suite, "export", wrapped_export):
            return fn(self)

    if getattr(fn, wrapper.pytorch_xfail_attr, False):
        run = unittest.expectedFailure(run)
    return run


def _variant_class(cls, wrapper):
    namespace = {}
    for name, fn in vars(cls).items():
        if name.startswith("test") and callable(fn):
            namespace[name + wrapper.pytorch_suffix] = _variant_method(fn, wrapper)
            namespace[name] = None  # the unsuffixed test must not run in the variant class
    return type(cls.__name__ + wrapper.pytorch_suffix, (cls,), namespace)


# This is the generated-classes pattern of PyTorch's wrapper files, kept here only as the baseline.
for _wrapper in BUILTIN_WRAPPERS:
    _cls = _variant_class(suite.TestStyle, _wrapper)
    globals()[_cls.__name__] = _cls
del _wrapper, _cls
