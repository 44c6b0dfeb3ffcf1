"""The code uses no torch API newer than the torch a ZeroGPU Space installs (2.11.0): every
torch name in vit_demo was checked under it (tools/torch_api.py)."""

from pathlib import Path

from tools.torch_api import chains_in_use

RECORDED = Path(__file__).resolve().parent.parent / "tools" / "torch_api_2.11.txt"


def test_every_torch_name_the_package_uses_was_checked_under_torch_2_11():
    checked = {line for line in RECORDED.read_text().splitlines() if line and not line.startswith("#")}
    unchecked = sorted(chains_in_use() - checked)
    assert not unchecked, (
        f"not checked under torch 2.11: {', '.join(unchecked)}. In a venv with torch==2.11.0, run "
        "`python -m tools.torch_api --write tools/torch_api_2.11.txt` (it refuses names 2.11 lacks)."
    )
