"""A headless Chromium against the app served in-process: the page loads, a short
training runs from the Build tab's button to the confusion matrix, Explore answers, and
a screenshot of each is saved. Uses Debian's chromium (never `playwright install`)."""

from pathlib import Path

import pytest
import torch
from gradio_client import Client, handle_file
from ui_helpers import EXAMPLE, serving_app, settings_for, wait_for

from tools.harness import VIEWPORT, chromium_path, launch_chromium
from tools.hostile_files import RUN_EDITS, edited_json
from vit_demo import plots, training_plots
from vit_demo.recipes import recipe_for
from vit_demo.run_record import RECORD_NAME
from vit_demo.service.workfolder import GRACE_SECONDS

pytestmark = pytest.mark.browser

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if chromium_path() is None:
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def served(data_dir, tiny_checkpoints, tmp_path_factory):
    with serving_app(
        settings_for(tmp_path_factory.mktemp("app"), tiny_checkpoints, data_dir, train_limit=1024)
    ) as both:
        yield both


def click_at(page, selector: str, x: float, y: float) -> None:
    """Click the picture at `selector` at (x, y) of its own pixels, whatever size it is shown at."""
    image = page.locator(selector)
    natural = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    box = image.bounding_box()
    scale = min(box["width"] / natural[0], box["height"] / natural[1])
    left = box["x"] + (box["width"] - natural[0] * scale) / 2
    top = box["y"] + (box["height"] - natural[1] * scale) / 2
    page.mouse.click(left + x * scale, top + y * scale)


@pytest.fixture(scope="module")
def url(served):
    return served[0]


@pytest.fixture
def page(url):
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url, wait_until="domcontentloaded")  # the event stream means "networkidle" never comes
        yield page
        browser.close()


def test_a_student_trains_a_model_and_explores_it(page, shots):
    page.get_by_text("Your ViT").wait_for(timeout=30_000)
    epochs = page.locator("#build-epochs input[type=number]")
    epochs.fill("2")
    epochs.press("Enter")
    page.locator("#build-summary").get_by_text("2 epochs").wait_for(timeout=30_000)
    page.locator("#build-start").click()

    page.locator("#train-status").get_by_text("Test accuracy:").wait_for(timeout=90_000)
    page.locator("#train-confusion img").wait_for()
    assert page.locator("#train-download").is_enabled()
    page.screenshot(path=str(shots / "train.png"))
    bring_back_in_another_tab(page, shots)

    # A click on a cell of the confusion matrix opens its mistakes: true 3, taken for 5.
    _, area = plots.figure_to_image_and_box(
        training_plots.plot_confusion_matrix(torch.zeros(10, 10), [str(d) for d in range(10)])
    )
    left, top, right, bottom = area
    cell = (right - left) / 10
    click_at(page, "#train-confusion img", left + 5.5 * cell, top + 3.5 * (bottom - top) / 10)
    page.locator("#train-mistakes-note").get_by_text("the model called").or_(
        page.locator("#train-mistakes-note").get_by_text("was taken for")
    ).wait_for(timeout=30_000)
    assert page.locator("#train-mistake-true input").input_value() == "3"
    assert page.locator("#train-mistake-guess input").input_value() == "5"
    page.screenshot(path=str(shots / "mistakes-clicked.png"))

    # The training timeline: the last snapshot is drawn; scrubbing to the start redraws it.
    frame = page.locator("#train-timeline-frame img")
    frame.wait_for(timeout=30_000)
    last_frame = frame.get_attribute("src")
    slider = page.locator("#train-timeline-slider input[type=range]")
    assert int(slider.get_attribute("max")) >= 1 and slider.is_enabled()
    slider.focus()
    slider.press("Home")  # keyboard moves fire `input` and `release`, as a drag does
    page.wait_for_function(
        "old => { const img = document.querySelector('#train-timeline-frame img'); return img && img.src !== old; }",
        arg=last_frame,
        timeout=30_000,
    )
    page.locator("#train-timeline-gif-button").click()
    page.locator("#train-timeline-gif").get_by_text("vit-training-timeline").wait_for(timeout=60_000)
    frame.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "timeline.png"))

    page.get_by_role("tab", name="③ Explore").click()
    page.locator("#explore-map img").wait_for(timeout=30_000)
    page.locator("#explore-faithfulness img").wait_for(timeout=30_000)
    assert "trained here" in page.locator("#explore-model-note").inner_text()
    assert "for random orders" in page.locator("#explore-where-summary").inner_text()  # the map, told in words
    page.screenshot(path=str(shots / "explore.png"))

    # A click on a patch of "What it sees" shows where that patch looks, in every layer and head.
    click_at(page, "#explore-seen img", 196 * 0.6, 196 * 0.3)  # 4x4 patches: row 2, column 3
    page.locator("#explore-heads-summary").get_by_text("patch 7 (row 2, column 3) attends most").wait_for(
        timeout=30_000
    )
    page.screenshot(path=str(shots / "explore-patch.png"))
    page.get_by_role("tab", name="The maths").click()
    page.locator("#explore-maths-summary").get_by_text("Patch 7's query").wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "explore-maths.png"))

    # A patch experiment: shuffle without pos_embedding, and the guess stays the same.
    page.get_by_role("tab", name="Experiments").click()
    page.locator("#experiment-figure img").wait_for(timeout=30_000)
    page.locator("#experiment-drop-position input").check()
    page.locator("#experiment-summary").get_by_text("in order").wait_for(timeout=30_000)
    assert "the same guess" in page.locator("#experiment-summary").inner_text()
    page.screenshot(path=str(shots / "experiment.png"))
    assert (shots / "train.png").stat().st_size > 10_000
    assert page.get_by_text("Error").count() == 0


def bring_back_in_another_tab(page, shots: Path) -> None:
    """The run's download, uploaded in a new tab, brings back its score and confusion matrix; the
    same zip with a 1000x1000 confusion matrix in its run.json gets the sentence that says why,
    while another client's predictions are answered."""
    with page.expect_download(timeout=60_000) as download:
        page.locator("#train-download").click()
    saved = shots / "saved-run.zip"
    download.value.save_as(saved)
    other = page.context.browser.new_page(viewport=VIEWPORT)
    other.goto(page.url, wait_until="domcontentloaded")
    other.get_by_role("tab", name="② Train").click()
    other.get_by_text("Bring back a run you downloaded").click()
    other.locator("#train-restore input[type=file]").set_input_files(str(saved))
    other.locator("#train-status").get_by_text("Restored: test accuracy").wait_for(timeout=60_000)
    other.locator("#train-confusion img").wait_for(timeout=30_000)
    hostile = edited_json(saved, shots / "hostile-run.zip", RECORD_NAME, RUN_EDITS["a 1000x1000 confusion matrix"][0])
    other.locator("#train-restore").get_by_label("Clear").click()  # the file shown makes room for another
    other.locator("#train-restore input[type=file]").set_input_files(str(hostile))
    neighbour = Client(page.url, verbose=False)
    assert neighbour.predict(handle_file(str(EXAMPLE)), "mnist", api_name="/predict")["label"]
    status = other.locator("#train-status")
    status.get_by_text("hostile-run.zip/run.json is 2.9 MB unpacked, over the").wait_for(timeout=30_000)
    assert other.get_by_text("Error", exact=True).count() == 0  # a sentence, not an error badge
    other.screenshot(path=str(shots / "restore-refused.png"))
    other.close()


def test_a_closed_tab_leaves_no_state_behind_once_swept(served):
    """Gradio would keep a closed page's state (its explored picture, model, timeline) for an
    hour, and its copy of the page until 500 newer pages pushed it out; once the service sweeps
    the page, both go."""
    url, service = served
    demo = next(hook.__self__ for hook in service.runs.gone_hooks).demo
    holder = demo.state_holder
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        before = set(holder.session_data)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="③ Explore").click()
        page.locator("#explore-map img").wait_for(timeout=30_000)
        (session,) = set(holder.session_data) - before
        assert holder.session_data[session].state_data  # the explored picture, at least
        page.close()
        wait_for(lambda: holder.session_data[session].is_closed)
        browser.close()
    service.runs.work.grace = 0
    try:
        # Swept (again and again: the page's unload may still be on its way), then forgotten.
        wait_for(lambda: service.runs.sweep() is not None and session not in holder.session_data)
    finally:
        service.runs.work.grace = GRACE_SECONDS


def test_a_class_run_started_on_the_teachers_page_trains_once_and_shows_on_a_students(url, shots):
    """Two real pages of one class-run lesson: the teacher's Start trains the run; the student's
    page, which never pressed Start, follows it live to the same final accuracy."""
    lesson = "?class_run=1&dataset=mnist&patch_size=7&dim=32&depth=2&heads=4&mlp_dim=64&epochs=3&seed=11"
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        teacher, student = (browser.new_page(viewport=VIEWPORT) for _ in range(2))
        for page in (teacher, student):
            page.goto(url + lesson, wait_until="domcontentloaded")
            page.locator("#lesson-banner").wait_for(timeout=30_000)
        teacher.locator("#build-start").click()
        student.get_by_role("tab", name="② Train").click()
        # The student never presses Start: what trains on their page is the class run.
        finished = {}
        for name, page in (("teacher", teacher), ("student", student)):
            status = page.locator("#train-status")
            status.get_by_text("Test accuracy:").wait_for(timeout=120_000)
            finished[name] = status.inner_text().split("Test accuracy:")[1].split()[0]
        # The student's page says whose run it is, to the end.
        assert "Your teacher's class run" in student.locator("#train-status").inner_text()
        assert "class run" not in teacher.locator("#train-status").inner_text()
        student.screenshot(path=str(shots / "class-run-student.png"))
        assert finished["student"] == finished["teacher"], finished
        # The run's model is the student's to explore, as if it were their own.
        student.get_by_role("tab", name="③ Explore").click()
        student.locator("#explore-model-note").get_by_text("trained").wait_for(timeout=30_000)
        browser.close()


def test_a_lesson_link_sets_up_the_build_tab_and_nothing_resets_it(url, tmp_path):
    finer = recipe_for("fashion_mnist").preset("finer")
    lesson = "?dataset=fashion_mnist&preset=finer&seed=3&lock=dataset,patch_size&hide=lr"
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url + lesson, wait_until="domcontentloaded")
        page.locator("#lesson-banner").get_by_text("Your teacher set up this lesson").wait_for(timeout=30_000)
        # The summary is drawn from the controls as they end up: the lesson's 49 patches, not the
        # dataset's first preset's 16 (which a later default would have brought back).
        page.locator("#build-summary").get_by_text("49 patches of 4×4×1").wait_for(timeout=30_000)
        fashion = page.locator("#build-dataset input[value=fashion_mnist]")
        assert fashion.is_checked() and fashion.is_disabled()
        assert page.locator("#build-preset input[value=finer]").is_checked()
        assert page.locator("#build-patch-size input").input_value() == str(finer.candidate.patch_size)
        assert page.locator("#build-patch-size input").is_disabled()
        assert page.locator("#build-depth input[type=number]").input_value() == str(finer.candidate.depth)
        assert page.locator("#build-seed input").input_value() == "3"
        assert page.locator("#build-lr").is_hidden()
        page.screenshot(path=str(tmp_path / "lesson.png"))
        browser.close()


def test_choosing_a_dataset_brings_its_presets_and_patch_sizes(page):
    page.locator("#build-summary").get_by_text("Your ViT").wait_for(timeout=30_000)
    page.locator("#build-dataset").get_by_text("CIFAR-10 photos").click()
    page.locator("#build-preset").get_by_text(recipe_for("cifar10").presets[0].label).wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#build-patch-size input').value === '8'", timeout=30_000)
    page.locator("#build-summary").get_by_text("16 patches", exact=False).wait_for(timeout=30_000)


def test_the_teacher_view_shows_the_class_live_and_makes_a_run_the_class_run(served, shots, monkeypatch):
    """Two students with nicknames (one guesses first) train tiny runs; the teacher's page, opened
    with the key, lists both with the knob-versus-accuracy figure, and a click on a row makes that
    run the class run. A page with a wrong key shows no teacher's view."""
    url, service = served
    monkeypatch.setenv("VIT_DEMO_TEACHER_KEY", "class-view-key")
    lesson = "?predict=accuracy&dataset=mnist&patch_size=7&dim=32&heads=4&mlp_dim=64&epochs=1&seed=21"
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        students = {}
        for name, depth, guess in (("Ada", 1, "80"), ("Bo", 2, None)):
            page = students[name] = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{url}{lesson}&depth={depth}", wait_until="domcontentloaded")
            page.get_by_role("tab", name="② Train").click()
            page.locator("#class-question").get_by_text("what test accuracy").wait_for(timeout=30_000)
            page.locator("#class-nickname textarea, #class-nickname input").first.fill(name)
            if guess:
                page.locator("#class-guess textarea, #class-guess input").first.fill(guess)
            page.locator("#train-start").click()
        for page in students.values():
            page.locator("#train-status").get_by_text("Test accuracy:").wait_for(timeout=120_000)
        ada = students["Ada"]
        ada.locator("#class-outcome").get_by_text("Your guess:").wait_for(timeout=30_000)
        assert "80 %" in ada.locator("#class-outcome").inner_text()
        ada.screenshot(path=str(shots / "class-student-guess.png"), full_page=True)

        teacher = browser.new_page(viewport=VIEWPORT)
        teacher.goto(url + "?teacher=class-view-key", wait_until="domcontentloaded")
        table = teacher.locator("#class-table")
        for name in students:
            table.locator("[data-testid^=cell-]").get_by_text(name, exact=True).wait_for(timeout=30_000)
        teacher.locator("#class-figure img").wait_for(timeout=30_000)
        # Only Ada guessed: Bo's untouched field is no guess of 0 %.
        teacher.locator("#class-guesses").get_by_text("1 guess, ").wait_for(timeout=30_000)
        assert "guessed 80 %" in teacher.locator("#class-guesses").inner_text()
        teacher.screenshot(path=str(shots / "class-teacher.png"), full_page=True)
        table.locator("[data-testid^=cell-]").get_by_text("Bo", exact=True).click()
        teacher.locator("#class-chosen").get_by_text("Bo's run is now the class run").wait_for(timeout=30_000)
        assert service.runs.hub.class_run is not None

        intruder = browser.new_page(viewport=VIEWPORT)
        intruder.goto(url + "?teacher=class-view-kez", wait_until="domcontentloaded")
        intruder.get_by_text("Your ViT").wait_for(timeout=30_000)
        assert intruder.get_by_role("tab", name="The class").count() == 0
        assert intruder.locator("#class-table").count() == 0
        browser.close()
