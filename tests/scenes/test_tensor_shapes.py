from scenes.tensor_shapes import shape_mismatch


def test_a_matching_file_has_no_mismatch_and_each_difference_is_counted_and_named():
    want = {"a": (2, 3), "b": (4,), "c": (1,)}
    assert shape_mismatch(want, {"a": (2, 3), "b": (4,), "c": (1,)}) is None
    said = shape_mismatch(want, {"a": (3, 2), "c": (1,), "z": (5,)})
    assert said == "missing 1 (b); unexpected 1 (z); wrong shape 1 (a)"
