"""install_as_safetensors() and transformers: unmodified library, safeweights underneath."""

import os
import subprocess
import sys
import textwrap

import safeweights


def test_transformers_uses_safeweights(tmp_path):
    # In a fresh interpreter so that the swap of sys.modules does not leak
    # into the other tests (which compare against the real reference).
    script = textwrap.dedent(
        f"""
        import sys
        import safeweights
        safeweights.install_as_safetensors()

        import safeweights._open as so
        calls = {{"open": 0}}
        original = so._File
        def counting(*a, **k):
            calls["open"] += 1
            return original(*a, **k)
        so._File = counting

        import torch
        import transformers  # must be importable: CI installs it
        import safetensors, safetensors.torch
        assert sys.modules["safetensors"].safe_open is safeweights.safe_open, sys.modules["safetensors"]
        assert safetensors.torch.__name__ == "safeweights.torch"
        from transformers import GPT2Config, GPT2LMHeadModel
        import transformers.modeling_utils as mu
        assert mu.safe_save_file.__module__ == "safeweights.torch", mu.safe_save_file.__module__

        torch.manual_seed(0)
        config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64)
        model = GPT2LMHeadModel(config).eval()
        out = {str(tmp_path)!r}
        model.save_pretrained(out, safe_serialization=True)
        with safetensors.safe_open(out + "/model.safetensors", "pt") as f:
            keys = f.keys()
        assert calls["open"] >= 1
        before = calls["open"]
        loaded = GPT2LMHeadModel.from_pretrained(out).eval()
        assert calls["open"] > before, "from_pretrained did not go through safeweights"
        sd1, sd2 = model.state_dict(), loaded.state_dict()
        assert sd1.keys() == sd2.keys()
        for k in sd1:
            assert torch.equal(sd1[k], sd2[k]), k
        ids = torch.arange(10).unsqueeze(0)
        assert torch.equal(model(ids).logits, loaded(ids).logits)
        print("OK", len(keys))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_install_registers_modules():
    script = textwrap.dedent(
        """
        import sys, safeweights
        safeweights.install_as_safetensors()
        import safetensors
        from safetensors import safe_open, SafetensorError
        from safetensors.numpy import save
        import safetensors.torch as st
        assert safetensors.safe_open is safeweights.safe_open and st is sys.modules["safeweights.torch"]
        assert safetensors.SafetensorError is safeweights.SafetensorError
        assert safetensors.__version__ == "0.8.0", safetensors.__version__
        assert safeweights.__version__ != "0.8.0" and safetensors.__safeweights_version__ == safeweights.__version__
        assert safetensors.torch is st
        assert safe_open is safeweights.safe_open and save.__module__ == "safeweights.numpy"
        print("OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_install_after_the_reference_was_imported_warns():
    script = textwrap.dedent(
        """
        import warnings
        import safetensors  # the reference
        import safeweights
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            safeweights.install_as_safetensors()
            safeweights.install_as_safetensors()  # again: already ours, no warning
        assert len(caught) == 1, [str(w.message) for w in caught]
        assert "already imported" in str(caught[0].message)
        import safetensors as again
        assert again.safe_open is safeweights.safe_open
        print("OK")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_environment_variable_installs_at_start_up(tmp_path):
    # The wheel puts safeweights_as_safetensors.pth in site-packages; the
    # interpreter runs its line at start-up. Processed here as site does.
    pth_dir = os.path.join(os.path.dirname(os.path.dirname(safeweights.__file__)))
    assert os.path.isfile(os.path.join(pth_dir, "safeweights_as_safetensors.pth"))
    script = textwrap.dedent(
        f"""
        import site, sys
        site.addsitedir({pth_dir!r})
        loaded_at_start = "safeweights" in sys.modules
        import safetensors, safeweights
        print(loaded_at_start, safetensors.safe_open is safeweights.safe_open, safetensors.__version__)
        """
    )
    # Without the variable the start-up hook imports nothing.
    for env, expected in (({"SAFEWEIGHTS_AS_SAFETENSORS": "1"}, "True True 0.8.0"), ({}, "False False 0.8.0")):
        full = {k: v for k, v in os.environ.items() if k != "SAFEWEIGHTS_AS_SAFETENSORS"}
        full.update(env)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=full)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected, (env, result.stdout, result.stderr)
