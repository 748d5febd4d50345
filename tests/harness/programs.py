"""Small test-module sources shared by the plugin's subprocess tests (written with ``pytester.makepyfile``)."""

UNSERIALIZABLE_PAIR = """
    import torch
    from torch.export import export
    from torch.utils import _pytree as pytree

    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    pytree.register_pytree_node(
        Pair, lambda p: ([p.a, p.b], None), lambda c, _: Pair(*c),
        flatten_with_keys_fn=lambda p: ([(pytree.GetAttrKey("a"), p.a), (pytree.GetAttrKey("b"), p.b)], None),
    )

    class TakesPair(torch.nn.Module):
        def forward(self, pair):
            return pair.a + pair.b
"""
"""A module input of a pytree class registered without ``serialized_type_name``: exports, then fails to serialize."""
