"""Device arguments: one parser (the native one, shared with the command
line) behind ``safe_open``, ``load_file`` and the parallel loader."""

import re

import pytest
import torch

from safeweights import SafetensorError
from safeweights._device import _parse_device


@pytest.mark.parametrize(
    "device, expected",
    [
        (None, "cpu"),
        ("cpu", "cpu"),
        ("cuda", "cuda"),
        ("cuda:1", "cuda:1"),
        ("cuda:01", "cuda:1"),
        ("xpu:2", "xpu:2"),
        ("meta", "meta"),
        (0, "cuda:0"),
        (3, "cuda:3"),
        (torch.device("cuda", 2), "cuda:2"),
        (torch.device("cpu"), "cpu"),
    ],
)
def test_devices_normalised(device, expected):
    assert _parse_device(device) == expected


@pytest.mark.parametrize("device", ["foo", "1", "", True, False, -1, 1.0, [0], 2**70])
def test_no_device_is_invalid(device):
    with pytest.raises(SafetensorError, match=re.escape(f"device {device} is invalid")):
        _parse_device(device)


@pytest.mark.parametrize("device", ["cuda:x", "cuda:", "cuda:1:2", "cuda:+1", "cuda: 1"])
def test_bad_ordinal_is_a_value_error(device):
    with pytest.raises(ValueError, match="invalid digit found in string"):
        _parse_device(device)
