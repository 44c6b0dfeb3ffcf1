"""ViT Playground: `python app.py` opens it, here or as a Hugging Face Space.

The environment is set before gradio is imported so the app starts and runs offline (no
analytics, version check or telemetry calls). Host and port come from GRADIO_SERVER_NAME and
GRADIO_SERVER_PORT (Spaces sets them); the app's own settings are VIT_DEMO_* variables
(vit_demo/settings.py). The page is served at once: the machine is timed afterwards, in the
background, and estimates rest on the development machine's figures until it is.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path

# A training process is started with multiprocessing's "spawn", which runs this file again
# under the name "__mp_main__" before it imports its job: it needs no interface of its own.
if __name__ != "__mp_main__":
    from vit_demo.ui import AppSettings, Service, build_demo, configure_torch_threads, launch_options

    settings = AppSettings.from_env(root=Path(__file__).resolve().parent)
    configure_torch_threads(settings)  # before the training process starts: it takes the same count
    service = Service(settings)
    demo = build_demo(service)

if __name__ == "__main__":
    service.start()
    demo.launch(**launch_options(settings))
