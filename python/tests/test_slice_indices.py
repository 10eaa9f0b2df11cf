"""Indices beyond ints and slices (lists, None) behave as the reference's do:
torch indexing for ``framework="pt"``, the reference's errors for numpy."""

import numpy as np
import pytest
import safetensors as reference
import safetensors.torch as reference_torch
import torch

import safeweights

INDICES = [
    [],
    [[0, 1]],
    [None],
    (None, slice(0, 2)),
    (slice(0, 2), None),
    (0, []),
    ([],),
    [1, 2],
    (Ellipsis, None),
    (slice(2, None), -6),
    (slice(2, None), 20),
    (20,),
    (slice(None), slice(None), 0),
    (Ellipsis, 4, 1),
    (-10, Ellipsis),
    (-11,),
    slice(None, 20),
    (slice(None), slice(None, 20)),
    (slice(10, None),),
    (slice(2, 2),),
    (slice(1, 3), slice(0, 5, 2)),
]


def _outcome(module, path, framework, index):
    with module.safe_open(path, framework) as f:
        try:
            t = f.get_slice("a")[index]
        except Exception as e:  # noqa: BLE001 - the outcome is the exception
            return ("error", type(e).__name__, str(e))
    return ("ok", tuple(t.shape), np.asarray(t).tolist())


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("framework", ["pt", "np"])
@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_index_outcome_matches_the_reference(tmp_path, framework, index):
    path = str(tmp_path / "a.safetensors")
    reference_torch.save_file({"a": torch.arange(50, dtype=torch.float32).reshape(10, 5)}, path)
    ours = _outcome(safeweights, path, framework, index)
    theirs = _outcome(reference, path, framework, index)
    if theirs[0] == "error":
        # Same message; ours is the reference's class or a subclass of it.
        assert ours[0] == "error", (ours, theirs)
        assert ours[2] == theirs[2]
    else:
        assert ours == theirs
