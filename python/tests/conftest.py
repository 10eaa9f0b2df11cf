import pytest


@pytest.fixture
def tmp_file(tmp_path):
    return str(tmp_path / "model.safetensors")
