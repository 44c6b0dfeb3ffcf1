"""`python app.py` as a ZeroGPU Space runs it, for tests/test_zerogpu.py: the real `spaces`
package in ZeroGPU mode (the environment names the scheduler, tests/zerogpu_standin.py), the
real app, the real forked worker.

On a machine without CUDA the worker cannot start CUDA on a lent GPU, so exactly the two calls
of spaces' worker set-up that need one are replaced: `spaces.zero.torch.init` (CUDA's start on
the lent device) and `spaces.zero.torch.move` (moving the Space's CUDA tensors onto it: this app
has none). Everything else is spaces' own. With CUDA present, nothing is replaced.

And it records any CUDA start in the server process itself (spaces forbids one there) in the
file $VIT_DEMO_CUDA_INIT_LOG, for the test to find.
"""

import os
import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    # Whether a GPU is here, asked as spaces asks (the driver's files): asking torch would start
    # CUDA in this process, which spaces refuses.
    cuda_here = Path("/proc/driver/nvidia/gpus").is_dir()
    import spaces.zero.torch as zero_torch  # spaces in ZeroGPU mode: it patches torch in this process
    import torch

    if not cuda_here:
        zero_torch.init = lambda nvidia_uuid: None
        zero_torch.move = lambda callback=None: None
    refuse_init = torch._C._cuda_init  # spaces' own: raises in the server

    def recorded_init():
        Path(os.environ["VIT_DEMO_CUDA_INIT_LOG"]).write_text(f"CUDA started in the server, pid {os.getpid()}\n")
        return refuse_init()

    torch._C._cuda_init = recorded_init
    app = Path(__file__).resolve().parent.parent / "app.py"
    sys.path.insert(0, str(app.parent))
    runpy.run_path(str(app), run_name="__main__")
