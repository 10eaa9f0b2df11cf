"""Files that are not plain files, or that change while they are read: a
Python error naming the file, never a hang or a killed interpreter."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import safeweights
import safeweights.torch
from safeweights.numpy import save_file


def _run(script, timeout=60):
    """Runs `script` in a fresh interpreter; a hang or a signal fails."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


@pytest.mark.parametrize("backend", ["mmap", "pread"])
def test_safe_open_refuses_a_fifo(tmp_path, backend):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    out = _run(
        f"""
        import safeweights
        try:
            safeweights.safe_open({str(fifo)!r}, "np", backend={backend!r})
        except Exception as e:
            print(type(e).__name__, e)
        """
    )
    assert "pipe.safetensors" in out and "not a regular file" in out, out


def test_load_checkpoint_and_convert_refuse_a_fifo(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    out = _run(
        f"""
        import safeweights, safeweights.torch
        for call in (lambda: safeweights.torch.load_checkpoint({str(fifo)!r}),
                     lambda: safeweights.convert({str(fifo)!r}, {str(tmp_path / "out.npz")!r})):
            try:
                call()
                print("no error")
            except Exception as e:
                print(type(e).__name__, e)
        """
    )
    assert out.count("pipe.safetensors") == 2 and "no error" not in out, out


def test_scan_of_a_file_truncated_meanwhile_keeps_the_interpreter(tmp_path):
    # Many small members: the scanner reads across the whole archive.
    import io
    import tarfile

    path = tmp_path / "bundle.tar"
    with tarfile.open(path, "w") as t:
        for i in range(3000):
            data = (f"member {i}\n" * 60).encode()
            info = tarfile.TarInfo(f"notes/{i:05}.txt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    image = path.read_bytes()
    out = _run(
        f"""
        import os, threading, time, safeweights
        path = {str(path)!r}
        image = open(path, "rb").read()
        for round in range(20):
            open(path, "wb").write(image)
            cut = threading.Thread(target=lambda: (time.sleep(0.001 * round), os.truncate(path, 0)))
            cut.start()
            report = safeweights.scan(path)
            cut.join()
        print("alive")
        """,
        timeout=300,
    )
    assert "alive" in out
    assert len(image) > 1_000_000


def test_incomplete_shard_set_is_an_error(tmp_path):
    for i in range(1, 4):
        save_file({f"t{i}": np.zeros(4, dtype=np.float32)}, str(tmp_path / f"model-{i:05}-of-00008.safetensors"))
    with pytest.raises(safeweights.SafetensorError) as e:
        safeweights.torch.load_checkpoint(str(tmp_path))
    assert "model-00004-of-00008.safetensors" in str(e.value)


def test_a_directory_given_to_safe_open_is_an_oserror_as_in_the_reference(tmp_path):
    import safetensors as reference

    with pytest.raises(OSError):
        reference.safe_open(str(tmp_path), "np")
    with pytest.raises(IsADirectoryError) as e:
        safeweights.safe_open(str(tmp_path), "np")
    assert e.value.file == str(tmp_path)
