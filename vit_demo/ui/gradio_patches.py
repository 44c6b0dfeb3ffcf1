"""Three changes to Gradio 6.31's behaviour, each measured here, each checked by a test that
fails when a Gradio upgrade moves what it changes.

- Output pictures are written to Gradio's cache atomically, and each once
  (`make_gradio_image_cache_atomic`).
- The queue polls less often when it has nothing to start (`calm_queue`).
- An output left unchanged (`gr.skip()`) costs nothing (`skip_unchanged_outputs`).
"""

from __future__ import annotations

import copy
import os
import tempfile
import threading
import weakref
from pathlib import Path

import gradio as gr
from gradio import processing_utils
from gradio.blocks import Blocks, postprocess_update_dict

# Gradio's queue looks for an event to start every millisecond while it has none (every 50 ms
# on Windows), and for progress to send every 10 ms. Measured on 2 cores: the idle server then
# used 6 % of a core, and during a 30-second training 5 s of CPU went to the server, taken from
# the training. A new event now waits at most 25 ms to start, a progress update at most 50 ms.
QUEUE_POLL_SECONDS = 0.025
PROGRESS_POLL_SECONDS = 0.05


def calm_queue(demo: gr.Blocks) -> None:
    """Poll for work less often (call after `demo.queue(...)`)."""
    queue = demo._queue
    if not (hasattr(queue, "sleep_when_free") and hasattr(queue, "progress_update_sleep_when_free")):
        raise RuntimeError("this Gradio's queue has no sleep_when_free to tune: check gradio_patches.py")
    queue.sleep_when_free = QUEUE_POLL_SECONDS
    queue.progress_update_sleep_when_free = PROGRESS_POLL_SECONDS


UNCHANGED = {"__type__": "update"}  # what gr.skip() returns, and what the page is sent for it


def skip_unchanged_outputs() -> None:
    """Gradio 6.31 handles `gr.skip()` as an update of the component's properties: it builds
    the component anew from its constructor arguments and regenerates its whole configuration
    (with the JSON schema of its API), for every skipped output of every event, to send the
    page `{"__type__": "update"}` at the end. A live training's frames change three or four of
    the Train tab's 30 outputs and skip the rest, so on a class's server (30 pages following
    runs) this was the largest part of the server's work (py-spy: 40 % of its CPU in
    `config_for_block`, benchmarks/RESULTS.md). Outputs that are skipped are now left out of
    that work, and sent what Gradio sends for a skip (`postprocess_update_dict`)."""
    if getattr(Blocks.postprocess_data, "vit_demo_skips", False):
        return
    original = Blocks.postprocess_data

    async def postprocess_data(self, block_fn, predictions, state):
        if not isinstance(predictions, (list, tuple)) or len(predictions) != len(block_fn.outputs):
            return await original(self, block_fn, predictions, state)
        changed = [i for i, value in enumerate(predictions) if not (isinstance(value, dict) and value == UNCHANGED)]
        if len(changed) == len(predictions):
            return await original(self, block_fn, predictions, state)
        # What Gradio sends for a skip, from the component as it is (no rebuilding, no configuration).
        output = [
            None
            if block.stateful
            else postprocess_update_dict(block=block, update_dict=dict(UNCHANGED), postprocess=False)
            for block in block_fn.outputs
        ]
        if changed:
            part = copy.copy(block_fn)
            part.outputs = [block_fn.outputs[i] for i in changed]
            values = [predictions[i] for i in changed]
            # Gradio wraps a single output's value in a list itself.
            processed = await original(self, part, values[0] if len(values) == 1 and not part.batch else values, state)
            for i, value in zip(changed, processed):
                output[i] = value
        return output

    postprocess_data.vit_demo_skips = True
    postprocess_data.original = original  # what a test compares it with
    Blocks.postprocess_data = postprocess_data


def make_gradio_image_cache_atomic() -> None:
    """Gradio 6.31 writes each output picture to its cache at a path named by the picture's
    hash, truncating and rewriting the file when the same picture is produced again. Two
    students exploring the same example at once therefore rewrite a file while the first
    one's browser is downloading it, and that download arrives empty ("peer closed
    connection", 8 of 388 requests in benchmarks/load_test.py). Write each picture once,
    under a temporary name renamed into place, as Gradio's own `save_file_to_cache` does.

    And encode each picture once: a shared run's frames, and a shipped model's explanation of
    a class's example, hand the same picture to every page that shows it (thirty in a class),
    and Gradio would encode it to PNG again for each. The app never changes a picture it has
    handed out, so a picture already written is found by what it is."""
    if getattr(processing_utils.save_pil_to_cache, "vit_demo_atomic", False):
        return
    # id(picture) -> {(cache, name, format): path}; an entry goes when its picture does (a PIL
    # image cannot be a dictionary key: it compares by content, without a hash).
    written: dict[int, dict] = {}
    lock = threading.Lock()

    def forget(identity: int) -> None:
        with lock:
            written.pop(identity, None)

    def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
        key = (cache_dir, name, format)
        with lock:
            known = written.get(id(img), {}).get(key)
        if known is not None and Path(known).is_file():
            return known
        path = _write_picture(img, cache_dir, name, format)
        with lock:
            if id(img) not in written:
                weakref.finalize(img, forget, id(img))
            written.setdefault(id(img), {})[key] = path
        return path

    def _write_picture(img, cache_dir: str, name: str, format: str) -> str:
        data = processing_utils.encode_pil_to_bytes(img, format)
        folder = Path(cache_dir) / processing_utils.hash_bytes(data)
        folder.mkdir(exist_ok=True, parents=True)
        target = (folder / f"{name}.{format}").resolve()
        if not target.exists():  # the same hash: the same bytes, already whole
            fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(staging, target)
            except BaseException:
                Path(staging).unlink(missing_ok=True)
                raise
        return str(target)

    save_pil_to_cache.vit_demo_atomic = True
    processing_utils.save_pil_to_cache = save_pil_to_cache
