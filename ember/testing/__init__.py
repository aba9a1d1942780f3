"""Helpers for testing ember itself: the op table (:mod:`ember.testing.table`), one row per
registered op with a NumPy/JAX reference, used by the test suite and ``ember gradcheck``."""
