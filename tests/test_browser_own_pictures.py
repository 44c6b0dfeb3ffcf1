"""A person's own pictures in headless Chromium: a zip of class folders, and pictures taken with
the (fake) webcam one by one, each trained from the Build tab and explored with their class
names; a hostile zip gets its sentence and leaves the page as it was."""

import time
from pathlib import Path

import pytest
from ui_helpers import serving_app, settings_for

from tools.harness import CHROMIUM_FLAGS, VIEWPORT, chromium_path
from tools.hostile_files import dataset_zip, hostile_dataset_zips, shape_picture

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if chromium_path() is None:
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

CLASSES = ("circles", "squares", "triangles")  # what tools/hostile_files.dataset_zip draws
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")


@pytest.fixture(scope="module")
def served(data_dir, tiny_checkpoints, tmp_path_factory):
    with serving_app(settings_for(tmp_path_factory.mktemp("app"), tiny_checkpoints, data_dir)) as both:
        yield both


@pytest.fixture
def page(served):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=[*CHROMIUM_FLAGS, *FAKE_CAMERA])
        context = browser.new_context(viewport=VIEWPORT, permissions=["camera"])
        page = context.new_page()
        page.goto(served[0], wait_until="domcontentloaded")
        page.get_by_text("Your ViT").wait_for(timeout=30_000)
        page.locator("#own-pictures").click()
        yield page
        browser.close()


def train_and_explore(page, shots: Path, name: str, classes) -> None:
    """Start the chosen own dataset's run, wait for its end, and see Explore name its classes."""
    page.locator("#build-summary").get_by_text("(3, 64, 64)").wait_for(timeout=30_000)
    page.screenshot(path=str(shots / f"{name}-build.png"), full_page=True)
    page.locator("#build-start").click()
    page.locator("#train-status").get_by_text("Test accuracy:").wait_for(timeout=120_000)
    page.screenshot(path=str(shots / f"{name}-train.png"), full_page=True)
    page.get_by_role("tab", name="③ Explore").click()
    page.locator("#explore-model-note").get_by_text("trained here").wait_for(timeout=30_000)
    seen = "document.querySelector('#explore-seen img')?.src || ''"
    settled = "!document.querySelector('#explore-label .progress-text, #explore-seen .progress-text')"
    page.wait_for_function(f"() => ({seen}) && {settled}", timeout=30_000)  # a held-out example, explored
    example = page.evaluate(f"() => {seen}")
    page.get_by_role("tab", name="Upload", exact=True).click()
    page.locator("#explore-upload input[type=file]").set_input_files(
        files=[{"name": "drawn.png", "mimeType": "image/png", "buffer": shape_picture("squares", 99, size=96)}]
    )
    page.wait_for_function(f"example => ({seen}) !== example && {settled}", arg=example, timeout=30_000)
    label = page.locator("#explore-label").inner_text()
    assert any(name in label for name in classes), label
    page.screenshot(path=str(shots / f"{name}-explore.png"), full_page=True)
    assert page.get_by_text("Error").count() == 0


def take_picture(camera) -> None:
    """Press the shutter until a frame is taken: it does nothing while the camera is starting."""
    taken = camera.locator("img[src*='gradio_api/file']")
    deadline = time.monotonic() + 60
    while not taken.count():
        assert time.monotonic() < deadline, "the webcam never gave a picture"
        if camera.get_by_text("Click to Access Webcam").count():
            camera.get_by_text("Click to Access Webcam").click()
        shutter = camera.locator("button[aria-label='capture photo']")
        if shutter.count() and shutter.is_visible():
            shutter.click()
        try:
            taken.wait_for(timeout=2_000)
        except sync_api.TimeoutError:
            continue


def test_a_zip_of_class_folders_trains_and_explores_and_a_hostile_one_is_refused(page, shots, tmp_path):
    (tmp_path / "hostile").mkdir()
    hostile = hostile_dataset_zips(tmp_path / "hostile")
    climbing = hostile["a path with ../"]
    page.locator("#own-archive input[type=file]").set_input_files(str(climbing))
    page.locator("#own-status").get_by_text("⚠️").wait_for(timeout=30_000)
    assert "../evil.png" in page.locator("#own-status").inner_text()  # the file, named
    assert page.locator("#build-dataset input:checked").input_value() == "mnist"  # nothing changed
    page.screenshot(path=str(shots / "own-hostile.png"), full_page=True)

    page.locator("#own-archive input[type=file]").set_input_files(str(dataset_zip(tmp_path, per_class=8)))
    page.locator("#own-status").get_by_text("3 classes").wait_for(timeout=30_000)
    chosen = page.locator("#build-dataset input:checked")
    assert chosen.input_value().startswith("own-")
    assert "Your pictures: shapes" in page.locator("#build-dataset").inner_text()
    train_and_explore(page, shots, "own-zip", CLASSES)


def test_pictures_taken_with_the_webcam_train_and_explore(page, shots):
    page.get_by_role("tab", name="Take or draw pictures").click()
    camera = page.locator("#own-camera")
    for name in ("left", "right"):
        for taken in range(1, 4):
            take_picture(camera)
            page.locator("#own-class textarea, #own-class input").first.fill(name)
            page.locator("#own-add").click()
            page.locator("#own-counts").get_by_text(f"{name} {taken}").wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "own-webcam-collected.png"), full_page=True)
    page.locator("#own-use").click()
    page.locator("#own-status").get_by_text("2 classes").wait_for(timeout=30_000)
    assert "Your pictures: your pictures" in page.locator("#build-dataset").inner_text()
    train_and_explore(page, shots, "own-webcam", ("left", "right"))


def test_a_lessons_folder_of_pictures_is_every_pages_dataset_and_trains(served, shots, tmp_path, monkeypatch):
    import zipfile

    with zipfile.ZipFile(dataset_zip(tmp_path, per_class=8)) as archive:
        archive.extractall(tmp_path)
    lesson = tmp_path / "lesson.json"
    lesson.write_text('{"title": "Lesson 5: our shapes", "dataset_folder": "shapes", "lock": ["dataset"]}')
    monkeypatch.setenv("VIT_DEMO_LESSON", str(lesson))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_FLAGS))
        pages = [browser.new_context(viewport=VIEWPORT).new_page() for _ in range(2)]  # two students
        for page in pages:
            page.goto(served[0], wait_until="domcontentloaded")
            page.locator("#lesson-banner").get_by_text("Lesson 5: our shapes").wait_for(timeout=30_000)
            chosen = page.locator("#build-dataset input:checked")
            chosen.wait_for(state="attached", timeout=30_000)
            page.wait_for_function(
                "() => document.querySelector('#build-dataset input:checked')?.value.startsWith('own-')",
                timeout=30_000,
            )
            assert "The class's pictures: shapes" in page.locator("#build-dataset").inner_text()
            assert "Left out" not in page.locator("#lesson-banner").inner_text()
        assert len({page.locator("#build-dataset input:checked").input_value() for page in pages}) == 1
        train_and_explore(pages[0], shots, "lesson-folder", CLASSES)
        browser.close()
