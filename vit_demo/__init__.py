"""ViT Playground: build a Vision Transformer, train it live, look inside it.

The map, from the model outwards:

    model.py                 the ViT (config in, modules in forward order, helpers after)
    data.py, training.py     the datasets; the live trainer, a generator of progress reports
    machine.py, step.py      the machine's features and cores; the training step (the CLI's faster paths too)
    speed.py                 how fast this machine trains each shape
    explain.py, views.py     what the model sees and where it looks; Explore's views of it
    experiment_view.py       Explore's patch experiments (shuffle, hide, no pos_embedding) and baselines
    plots.py, training_plots.py, figure_style.py   every figure, and their shared look
    summaries.py             the sentence beside each figure
    checkpoints.py, run_record.py, validation.py   saving and reading models and runs, bounded
    service/                 the server without gradio: every decision about runs (its map)
    ui/                      the Gradio page: lays out components, places named results on them
    __main__.py              the command line

Glossary (one name for each thing, used everywhere):

    knobs        what a person chooses for a run: dataset, the shape, lr, batch size, epochs, seed
    shape        the knobs that fix the model's size (model.SHAPE_FIELDS); the dataset fixes the rest
    config       a ViTConfig: every number that fixes a ViT
    run          one training of one set of knobs; a shared run is one that several pages follow
    class run    a lesson's run, started once by its teacher and shown on every page of the lesson
    page         one open browser tab (its key names its files and its run)
    frame        one live update of a run, a dict of named changes (service/producer.FRAME_FIELDS)
    seat         a place among the trainings that run at once (VIT_DEMO_MAX_TRAININGS); the rest wait
    snapshot     the model at one point of a run, for the timeline (timeline.Snapshot)
    watched      the 8 test pictures whose guesses a run shows live; a snapshot's `probe_*` fields
                 are about the first of them (the names saved runs carry, so they stay)
    view         one of Explore's tabs of figures (views.VIEWS)
    lesson       a link or file that sets up the Build tab for a class (service/lessons.py);
                 the Learn tab's texts are its sections (vit_demo/learn/*.md)
    work folder  the app's own folder (VIT_DEMO_WORK_DIR): nothing is written anywhere else
"""
