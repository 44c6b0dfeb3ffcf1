"""ViT Playground: `python app.py` opens it, here or as a Hugging Face Space.

The environment is set before gradio is imported so the app starts and runs offline (no
analytics, version check or telemetry calls). Host and port come from
GRADIO_SERVER_NAME and GRADIO_SERVER_PORT (Spaces sets them); the app's own settings
are VIT_DEMO_* variables (see vit_demo/ui/settings.py).
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from pathlib import Path  # noqa: E402

from vit_demo.ui import AppSettings, build_demo, configure_torch_threads, launch_options  # noqa: E402

settings = AppSettings.from_env(root=Path(__file__).resolve().parent)
configure_torch_threads(settings)  # before build_demo: its throughput benchmark runs as the app will
demo = build_demo(settings)

if __name__ == "__main__":
    demo.launch(**launch_options(settings))
