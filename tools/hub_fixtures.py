#!/usr/bin/env python3
"""Writes tests/fixtures/hub: files that the Hugging Face libraries themselves make, for tests that
check spin reads and writes them as those libraries do.

- generation_config-tiny.json: transformers' GenerationConfig.from_model_config(...).save_pretrained
  for the tiny preset's MistralConfig (what HF's save_pretrained puts beside config.json).
- local-dir/.cache/huggingface/download/config.json.metadata: huggingface_hub's record of a
  `huggingface-cli download --revision R --local-dir DIR` (first line: the commit).

Needs `pip install transformers` (pulls huggingface_hub; torch is not needed).
Run: python3 tools/hub_fixtures.py [--out tests/fixtures/hub]
"""
import argparse
import shutil
import tempfile
from pathlib import Path

from huggingface_hub._local_folder import write_download_metadata
from transformers import GenerationConfig, MistralConfig

# The commit of alignment-handbook/zephyr-7b-sft-full the reference (uclaml/SPIN) pins.
REFERENCE_REVISION = "ac6e600eefcce74f5e8bae1035d4f66019e93190"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="tests/fixtures/hub")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)

    # the tiny preset: spin's MistralConfig.tiny()
    tiny = MistralConfig(vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, sliding_window=128, bos_token_id=1, eos_token_id=2)
    with tempfile.TemporaryDirectory() as tmp:
        GenerationConfig.from_model_config(tiny).save_pretrained(tmp)
        shutil.copy(Path(tmp) / "generation_config.json", out / "generation_config-tiny.json")

    local = out / "local-dir"
    if local.exists():
        shutil.rmtree(local)
    local.mkdir()
    write_download_metadata(local, "config.json", REFERENCE_REVISION, "0" * 40)
    # only the metadata file is a fixture; the library's bookkeeping beside it is not
    download = local / ".cache" / "huggingface" / "download"
    for p in sorted(local.rglob("*"), reverse=True):
        if p.is_file() and p != download / "config.json.metadata":
            p.unlink()


if __name__ == "__main__":
    main()
